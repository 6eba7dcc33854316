"""Trusted publishers: provider claim models, policy files, and matching claims to publishers."""
