"""The one application error type. Each app's exceptions module subclasses it.

A domain error carries a `code` from api.md's list; the API's exception handler turns it into
problem+json with that code, and the admin shows `message` to the operator.
"""

from __future__ import annotations

from typing import Any


class LoyaltyError(Exception):
    code = "validation_error"
    status = 422
    default_message = "The request cannot be carried out."

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.message = str(message or self.default_message)
        self.data = data
        super().__init__(self.message)
