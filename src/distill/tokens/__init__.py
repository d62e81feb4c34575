"""Token and chat helpers shared by `serve`, `generate` and the data readers: chat rendering, token-string mapping."""
