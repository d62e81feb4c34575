"""The loss: divergences as small pure functions, and the chunked loss with the output projection fused in."""
