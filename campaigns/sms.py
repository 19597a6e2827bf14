"""Sending text messages: a small interface with two senders, chosen by the SMS_SENDER setting.

- `LoggingSmsSender` (default): sends nothing; logs each message and keeps it in `outbox`
  (this process) and, with SMS_LOG_FILE set, appends it as a JSON line to that file.
- `HttpGatewaySmsSender`: POSTs JSON to the gateway at SMS_GATEWAY_URL.

Another provider is a class with the same `send` method named in SMS_SENDER.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SmsError(Exception):
    """The message was not accepted (the caller records the failure and may retry)."""


@dataclass(frozen=True)
class TextMessage:
    to: str
    text: str
    reference: str


class SmsSender(Protocol):
    def send(self, *, to: str, text: str, reference: str) -> None:
        """Hand one message to the provider; raise SmsError when it is refused.

        `reference` is unique per message (a provider that de-duplicates can key on it)."""


# Messages "sent" by LoggingSmsSender in this process, like django.core.mail.outbox in tests.
outbox: list[TextMessage] = []


def _masked(phone: str) -> str:
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "***"


class LoggingSmsSender:
    """Sends nothing: for development, demos and tests."""

    def __init__(self, log_file: str | None = None) -> None:
        self.log_file = log_file if log_file is not None else settings.SMS_LOG_FILE

    def send(self, *, to: str, text: str, reference: str) -> None:
        message = TextMessage(to=to, text=text, reference=reference)
        # Masked: logs are read by more people than may see members' phone numbers.
        logger.info("SMS to %s (%s): %s", _masked(to), reference, text)
        outbox.append(message)
        if self.log_file:
            line = (json.dumps(asdict(message), ensure_ascii=False) + "\n").encode()
            # One write() of an O_APPEND file: a line is whole even if the process dies after.
            fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class HttpGatewaySmsSender:
    """POST {"to", "text", "reference"} as JSON to a gateway; any 2xx answer is success.

    The reference is also sent as `Idempotency-Key`, for gateways that de-duplicate."""

    def __init__(self, url: str | None = None, timeout: float | None = None) -> None:
        self.url = url if url is not None else settings.SMS_GATEWAY_URL
        self.timeout = timeout if timeout is not None else settings.SMS_GATEWAY_TIMEOUT
        if not self.url:
            raise SmsError("SMS_GATEWAY_URL is not set")

    def send(self, *, to: str, text: str, reference: str) -> None:
        body = json.dumps({"to": to, "text": text, "reference": reference}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": reference},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            raise SmsError(f"gateway answered {error.code}") from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise SmsError(f"gateway unreachable: {error}") from error
        if not 200 <= status < 300:
            raise SmsError(f"gateway answered {status}")


def sms_sender() -> SmsSender:
    """The sender named by the SMS_SENDER setting (a dotted path to a class)."""
    return import_string(settings.SMS_SENDER)()
