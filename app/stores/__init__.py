"""State that must survive a request: replay records (and, later, revocations).

Domain code depends on the Protocols in `base`; only `create_app` picks an adapter.
"""
