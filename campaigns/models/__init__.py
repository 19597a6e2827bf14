"""campaigns' models, one module per area (events, rules, reminders, health) so that each area
reads on its own; Django finds them through this package."""

from campaigns.models.events import Event

__all__ = ["Event"]
