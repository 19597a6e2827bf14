"""Domain errors of the ledger; each carries an api.md error code (see LoyaltyError)."""

from django.utils.translation import gettext_lazy as _

from loyalty_site.exceptions import LoyaltyError


class PointsError(LoyaltyError):
    pass


class InvalidPoints(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("Points must be a whole number greater than zero.")


class InvalidLedgerRequest(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("The request is not valid for the ledger.")


class InsufficientPoints(PointsError):
    code = "insufficient_points"
    status = 422
    default_message = _("The member does not have enough available points.")


class DuplicateReference(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("This partner already recorded an order with this reference.")


class ReferenceOfAnotherMember(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("This reference belongs to another member's order.")


class OrderNotFound(PointsError):
    code = "not_found"
    status = 404
    default_message = _("No order with this reference for this partner.")


class AlreadyRefunded(PointsError):
    code = "already_refunded"
    status = 422
    default_message = _("The refund is more than what is left to refund on this order.")


class AlreadyGivenBack(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("The points of this redemption were already given back.")


class LedgerInconsistent(PointsError):
    """The ledger's own bookkeeping disagrees with itself: the transaction is rolled back."""

    code = "server_error"
    status = 500
    default_message = _("The points ledger is inconsistent; nothing was changed.")


# --- Transfers and exchange (docs/adr/0016) ----------------------------------------------------
class DailyLimitExceeded(PointsError):
    """A daily limit of transfers or conversions would be passed; nothing was moved."""

    code = "limit_exceeded"
    status = 422
    default_message = _("This would exceed the daily limit; nothing was moved.")


class InvalidTransfer(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("This transfer is not valid.")


class UnknownExchangeProgramme(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("No active exchange programme with this code.")


class InvalidConversion(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("This conversion is not valid.")


# --- Maker-checker and bulk grants (points/grants.py) --------------------------------------------
class OwnRequestApproval(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("Another operator must decide: nobody approves or rejects their own.")


class AlreadyDecided(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("This was already approved or rejected.")


class DuplicateBulkGrantFile(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("This file was already uploaded as another bulk grant.")


class BulkGrantFileInvalid(PointsError):
    code = "validation_error"
    status = 422
    default_message = _("The file cannot be used for a bulk grant.")


class SettlementRefused(PointsError):
    """A settlement month cannot be closed (not over yet, already closed, out of order)."""

    code = "validation_error"
    status = 422
    default_message = _("This settlement month cannot be closed.")


# --- Issuance freeze (docs/adr/0018) -------------------------------------------------------------
class IssuanceFrozen(PointsError):
    """The programme's issuance is frozen: no points are credited; nothing was written."""

    code = "issuance_frozen"
    status = 422
    default_message = _("Points issuance is frozen for the programme; nothing was awarded.")
