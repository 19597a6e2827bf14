from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Earning rules and campaigns")

    def ready(self) -> None:
        from campaigns.reminders import erase_reminder_personal_data
        from campaigns.services import erase_event_personal_data
        from members.personal_data import register_erasure_step

        register_erasure_step(erase_event_personal_data)
        register_erasure_step(erase_reminder_personal_data)

        from campaigns import signals

        signals.connect()
