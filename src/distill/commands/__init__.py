"""Sub-commands of the `distill` CLI, one module each (see `distill.cli`)."""
