import pytest


@pytest.fixture(autouse=True)
def _clear_key_cache():
    # Verified API keys are cached per process; tests create and revoke keys freely.
    from loyalty_site.api.auth import verified_keys

    verified_keys.clear()
    yield
    verified_keys.clear()
