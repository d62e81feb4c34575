"""Teacher-vs-student evaluation: the retention report behind `distill eval`."""
