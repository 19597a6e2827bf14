"""A real HTTP receiver on 127.0.0.1 (http.server in a thread) that checks Loyalty-Signature the
way a partner would, and answers with the status codes a test scripts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from tests.factories import MemberFactory, PartnerFactory

UTC = ZoneInfo("UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Received:
    status: int
    body: dict
    raw: bytes
    headers: dict
    signature_ok: bool


@dataclass
class Receiver:
    """`answers`: status codes for the next requests in turn (then `default`); `answer_for`:
    a function of the parsed body that may choose the status instead."""

    url: str = ""
    secret: str = ""
    answers: list[int] = field(default_factory=list)
    default: int = 200
    answer_for: object = None
    received: list[Received] = field(default_factory=list)
    on_request: object = None

    def verify(self, header: str, raw: bytes) -> bool:
        # What the README tells partners to do: recompute HMAC-SHA256 of "t.body".
        parts = dict(item.split("=", 1) for item in header.split(","))
        expected = hmac.new(
            self.secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", ""))

    @property
    def ids(self) -> list[int]:
        return [request.body["id"] for request in self.received]


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(raw)
            signature_ok = state.verify(self.headers.get("Loyalty-Signature", "t=0"), raw)
            if state.on_request:
                state.on_request()
            chosen = state.answer_for(body) if state.answer_for and signature_ok else None
            if not signature_ok:
                status = 401
            elif chosen:
                status = chosen
            elif state.answers:
                status = state.answers.pop(0)
            else:
                status = state.default
            state.received.append(Received(status, body, raw, dict(self.headers), signature_ok))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"not now")

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/loyalty"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def partner(db):
    return PartnerFactory(name="Shop app")


@pytest.fixture
def endpoint(receiver, partner):
    """An endpoint of every event type pointing at the receiver, which knows its secret."""
    from points import webhooks

    endpoint, secret = webhooks.endpoint_create(
        partner=partner,
        url=receiver.url,
        event_types=[value for value, _label in webhooks.EVENT_TYPES],
    )
    receiver.secret = secret
    return endpoint


@pytest.fixture
def member(db):
    return MemberFactory(external_id="u-1001")


@pytest.fixture
def other_member(db):
    return MemberFactory(external_id="u-1002")


class MailServerDown:
    """An EMAIL_BACKEND whose server never answers."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp: connection refused")
