import pytest


def pytest_configure(config):
    # The manifest storage needs `collectstatic`; tests render admin pages without it.
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Tests change the programme settings between requests; the per-process copy would hide it
    # (tests/ledger_api/test_programme_cache.py tests the cache itself).
    settings.PROGRAMME_CACHE_SECONDS = 0
    # Likewise the compiled rulebook: every event reads the rulebook's version.
    settings.RULEBOOK_CHECK_SECONDS = 0


@pytest.fixture(autouse=True)
def _clear_key_cache():
    # Verified API keys are cached per process; tests create and revoke keys freely.
    from loyalty_site.api.auth import verified_keys

    verified_keys.clear()
    yield
    verified_keys.clear()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    # The ledger tables refuse TRUNCATE (points.models.TRUNCATE_GUARD_FUNC); Django empties the
    # tables with TRUNCATE after each transactional test, so the TEST database allows it.
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor != "postgresql":
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT format('ALTER DATABASE %I SET loyalty.allow_ledger_truncate = on',"
                    " current_database())"
                )
                cursor.execute(cursor.fetchone()[0])
                cursor.execute("SET loyalty.allow_ledger_truncate = on")


@pytest.fixture
def partner_key():
    """partner_key(*scopes, partner_name=...) -> (PartnerAPIKey, plain key), made through the
    real `create_partner_key` service; no scopes means every scope."""
    from loyalty_site.api.keys import create_partner_key
    from points.models import ApiScope

    def make(*scopes: str, partner_name: str = "Test partner"):
        return create_partner_key(partner_name=partner_name, scopes=scopes or ApiScope.values)

    return make


@pytest.fixture
def partner_api(partner_key):
    """partner_api(*scopes, partner_name=...) -> an APIClient sending `Authorization: Api-Key`
    with a new key of these scopes (no scopes: every scope); `.api_key` is the key row."""
    from rest_framework.test import APIClient

    def make(*scopes: str, partner_name: str = "Test partner"):
        api_key, plain_key = partner_key(*scopes, partner_name=partner_name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain_key}")
        client.api_key = api_key
        client.plain_key = plain_key
        return client

    return make


@pytest.fixture
def entry_tier():
    """The default programme's entry tier (migration members.0002), recreated when an earlier
    transactional test emptied the tables; new members need it."""
    from tests.factories import TierFactory

    return TierFactory(code="member", name="会员 Member", rank=0, growth_threshold=0)


@pytest.fixture
def broken_ledger():
    """Marks a test that corrupts the ledger on purpose (no invariant check afterwards)."""


@pytest.fixture(autouse=True)
def _ledger_sound_after_every_database_test(request):
    # check_ledger must be clean after the whole suite; checking after each test names the culprit.
    yield
    if request.node.get_closest_marker("django_db") is None:
        return
    from django.db import connection

    if "broken_ledger" in request.fixturenames or connection.needs_rollback:
        return  # corrupted on purpose, or the test already failed inside a transaction
    from points.services import check_ledger_invariants

    assert check_ledger_invariants() == []


@pytest.fixture(autouse=True)
def _english_outside_requests():
    # Assertions read English; requests still get the language the middleware picks (zh-hans).
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _default_earning_rules(request):
    """The default programme's rules (migration campaigns.0003) in every database test, also
    after a transactional test emptied the tables; no compiled rulebook carried between tests."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        yield
        return
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
    from campaigns.services import ensure_default_programme

    ensure_default_programme()
    yield
    from campaigns import engine

    engine.drop_local_rulebook()
