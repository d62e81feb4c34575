"""`distill serve`: an OpenAI-compatible server for any model `distill.models.load_model` loads.

`engine` (batched generation), `schemas` (request bodies), `app` (FastAPI app and hooks), `keys` (API keys),
`background` (run an app on a thread).
"""
