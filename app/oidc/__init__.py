"""Verifying CI identity tokens: issuers, key sets, JWT verification. No Flask, no Redis."""
