"""API plumbing shared by every app's `api.py`: auth, idempotency, errors, pagination."""
