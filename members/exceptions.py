from django.utils.translation import gettext_lazy as _

from loyalty_site.exceptions import LoyaltyError


class MemberError(LoyaltyError):
    pass


class MemberNotFound(MemberError):
    code = "not_found"
    status = 404
    default_message = _("No member with this external id.")


class MemberFrozen(MemberError):
    code = "member_frozen"
    status = 422
    default_message = _("The member is frozen: points can neither be earned nor spent.")


class MemberClosed(MemberError):
    code = "validation_error"
    status = 422
    default_message = _("The member's account is closed.")


class UnknownReferralCode(MemberError):
    code = "validation_error"
    status = 422
    default_message = _("No member has this referral code.")


class InvalidStatusChange(MemberError):
    code = "validation_error"
    status = 422
    default_message = _("This status change is not allowed.")


class InvalidGrowth(MemberError):
    code = "validation_error"
    status = 422
    default_message = _("Growth value must be a whole number other than zero.")


class MemberErased(MemberError):
    code = "validation_error"
    status = 422
    default_message = _("This member's personal data was already erased.")


class AlreadyCheckedIn(MemberError):
    code = "validation_error"
    status = 422
    default_message = _("The member has already checked in today.")
