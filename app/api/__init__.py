"""Flask blueprints: a view parses, calls one service, renders. Errors are rendered in `errors`."""
