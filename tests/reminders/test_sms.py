"""The SMS senders: the logging one records, the HTTP gateway one POSTs to a real local server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from campaigns import sms


class Gateway:
    """A local HTTP server answering `status` and keeping what it received."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict, dict]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.received.append((dict(self.headers), json.loads(body)))
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_the_gateway_sender_posts_json_with_the_reference_as_idempotency_key():
    with Gateway() as gateway:
        sms.HttpGatewaySmsSender(url=gateway.url).send(
            to="13800138000", text="积分提醒", reference="reminder-7"
        )

    ((headers, body),) = gateway.received
    assert body == {"to": "13800138000", "text": "积分提醒", "reference": "reminder-7"}
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "reminder-7"


def test_a_refusing_or_unreachable_gateway_raises_sms_error():
    with Gateway(status=503) as gateway, pytest.raises(sms.SmsError, match="503"):
        sms.HttpGatewaySmsSender(url=gateway.url).send(to="1", text="x", reference="r")
    with pytest.raises(sms.SmsError, match="unreachable"):
        sms.HttpGatewaySmsSender(url=gateway.url, timeout=1).send(to="1", text="x", reference="r")


def test_the_gateway_sender_needs_a_url(settings):
    settings.SMS_GATEWAY_URL = ""

    with pytest.raises(sms.SmsError, match="SMS_GATEWAY_URL"):
        sms.HttpGatewaySmsSender()


def test_the_sender_is_chosen_by_the_setting(settings):
    settings.SMS_SENDER = "campaigns.sms.HttpGatewaySmsSender"
    settings.SMS_GATEWAY_URL = "http://gateway.invalid/send"

    assert isinstance(sms.sms_sender(), sms.HttpGatewaySmsSender)


def test_the_logging_sender_logs_and_records_each_message(tmp_path, caplog):
    sms.outbox.clear()
    log_file = tmp_path / "sms.jsonl"
    sender = sms.LoggingSmsSender(log_file=str(log_file))

    with caplog.at_level("INFO", logger="campaigns.sms"):
        sender.send(to="13800138000", text="第一条", reference="reminder-1")
        sender.send(to="13900139000", text="second", reference="reminder-2")

    assert [m.reference for m in sms.outbox] == ["reminder-1", "reminder-2"]
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines[0] == {"to": "13800138000", "text": "第一条", "reference": "reminder-1"}
    assert "SMS to 139****9000 (reminder-2): second" in caplog.text
    sms.outbox.clear()
