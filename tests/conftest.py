import pytest


def pytest_configure(config):
    # The manifest storage needs `collectstatic`; tests render admin pages without it.
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _clear_key_cache():
    # Verified API keys are cached per process; tests create and revoke keys freely.
    from loyalty_site.api.auth import verified_keys

    verified_keys.clear()
    yield
    verified_keys.clear()
