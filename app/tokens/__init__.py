"""Upload tokens: signing keys, minting (and, later, introspection and revocation)."""
