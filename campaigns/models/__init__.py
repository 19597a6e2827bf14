"""campaigns' models, one module per area (events, rules, reminders, health) so that each area
reads on its own; Django finds them through this package."""

from campaigns.models.events import Event
from campaigns.models.reminders import (
    Channel,
    MessageTemplate,
    ReminderDelivery,
    ReminderSettings,
)

__all__ = ["Channel", "Event", "MessageTemplate", "ReminderDelivery", "ReminderSettings"]
