"""What operators type: `session-worker topics`, `check`, `tail`, `publish`, `get` and `dlq`,
one module each (tests in tests/ops/). `worker.cli` parses the command line and calls them."""
