"""Domain errors of the rewards mall; each carries an api.md error code (see LoyaltyError)."""

from django.utils.translation import gettext_lazy as _

from loyalty_site.exceptions import LoyaltyError


class RewardsMallError(LoyaltyError):
    pass


class RewardNotFound(RewardsMallError):
    code = "not_found"
    status = 404
    default_message = _("No reward with this code.")


class RewardUnavailable(RewardsMallError):
    code = "reward_unavailable"
    status = 422
    default_message = _("This reward cannot be redeemed now.")


class OutOfStock(RewardsMallError):
    code = "out_of_stock"
    status = 422
    default_message = _("This reward is out of stock.")


class LimitExceeded(RewardsMallError):
    code = "limit_exceeded"
    status = 422
    default_message = _("The member has reached the limit for this reward.")


class InvalidRedemption(RewardsMallError):
    code = "validation_error"
    status = 422
    default_message = _("The redemption request is not valid.")


class RedemptionNotFound(RewardsMallError):
    code = "not_found"
    status = 404
    default_message = _("No redemption with this id.")


class InvalidStatusTransition(RewardsMallError):
    code = "validation_error"
    status = 422
    default_message = _("The redemption cannot change to this status.")


class InvalidRewardChange(RewardsMallError):
    code = "validation_error"
    status = 422
    default_message = _("The reward cannot be changed this way.")


class InvalidMallLink(RewardsMallError):
    code = "validation_error"
    status = 422
    default_message = _("This link is not valid, was already used or has expired.")


class TooManyLoginAttempts(RewardsMallError):
    code = "throttled"
    status = 429
    default_message = _("Too many failed attempts: try again in 15 minutes.")
