"""The Celery application: tasks are thin wrappers around services (see architecture.md)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_site.settings")

app = Celery("loyalty_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="loyalty_site.ping")
def ping() -> str:
    """Answers "pong": used by the readiness check's integration test and by operators."""
    return "pong"
