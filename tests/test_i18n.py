"""The admin speaks Chinese by default and English after the language switch."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_admin_login_is_chinese_by_default(client):
    page = client.get("/admin/login/").content.decode()
    assert '<html lang="zh-hans"' in page
    assert "会员积分管理后台" in page
    assert "用户名" in page  # Django's own catalogue: "Username"
    assert "Loyalty back office" not in page


def test_admin_login_is_english_after_switching_language(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"

    page = client.get("/admin/login/").content.decode()
    assert '<html lang="en"' in page
    assert "Loyalty back office" in page
    assert "Username" in page
    assert "会员积分管理后台" not in page


def test_admin_pages_offer_both_languages_and_mark_the_current_one(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert 'action="/i18n/setlang/"' in page
    assert 'value="zh-hans" lang="zh-hans"\n      aria-pressed="true"' in page
    assert 'value="en" lang="en"\n      aria-pressed="false"' in page
    assert "English" in page
    assert "简体中文" in page


def test_english_speaking_browser_gets_english_without_switching(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9").content.decode()
    assert "Loyalty back office" in page
