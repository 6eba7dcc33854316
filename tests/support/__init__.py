"""Test-support helpers: real Redis, a test CA, a real HTTPS OIDC issuer and claim sets."""
