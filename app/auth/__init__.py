"""Callers of the introspection, revocation and management APIs."""
