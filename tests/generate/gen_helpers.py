"""Constants shared by the generation tests."""

API_KEY = "sk-secret-generate-7f3a9c"
