"""campaigns' admin, one module per area (registrations happen on import)."""

from campaigns import health_admin  # noqa: F401
