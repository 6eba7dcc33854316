"""Self-tests for tests/support: they fail if the support code stops doing its job."""
