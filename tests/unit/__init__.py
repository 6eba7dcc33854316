"""Pure unit tests: no network, no Redis; they mirror the layout of app/."""
