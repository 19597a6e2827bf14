"""Celery tasks of the site itself: thin wrappers around services."""

from celery import shared_task

from loyalty_site.api.idempotency import purge_expired_records


@shared_task(name="loyalty_site.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Forget Idempotency-Keys older than IDEMPOTENCY_KEY_TTL_HOURS; returns how many."""
    return purge_expired_records()
