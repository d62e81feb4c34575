"""Token and chat helpers shared by `serve`, `generate`, `trace` and the data readers: chat rendering,
token-string mapping, the OpenAI chat-completions URL."""
