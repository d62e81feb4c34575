"""The training core: set-up, the loop and its callbacks, checkpoints, on-policy sampling, the finished student."""
