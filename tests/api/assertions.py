"""Assertions shared by the API tests."""

from __future__ import annotations


def assert_problem(response, status: int, code: str) -> dict:
    """The response is an RFC 9457 problem+json with api.md's `code`; returns its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body
