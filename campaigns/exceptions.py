from django.utils.translation import gettext_lazy as _

from loyalty_site.exceptions import LoyaltyError


class CampaignsError(LoyaltyError):
    pass


class UnknownEventType(CampaignsError):
    code = "validation_error"
    status = 422
    default_message = _("This event type is not configured in the programme.")


class CurrencyMismatch(CampaignsError):
    code = "validation_error"
    status = 422
    default_message = _("The currency is not the programme's currency.")


class InvalidReminderRun(CampaignsError):
    code = "validation_error"
    status = 422
    default_message = _("The reminder run was asked for something it cannot do.")


class HeldEventNotApprovable(CampaignsError):
    """A review decision that cannot be carried out (risk control, docs/adr/0018)."""

    code = "validation_error"
    status = 422
    default_message = _("This held event cannot be decided this way.")
