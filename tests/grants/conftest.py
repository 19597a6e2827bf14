"""Fixtures of the maker-checker and bulk grant tests (points/grants.py)."""

from __future__ import annotations

import io

import pytest
import tablib
from django.contrib.auth.models import Permission
from django.test import Client

from points.grants_admin import BulkGrantRowResource
from points.models import ApprovalSettings, BulkGrant
from tests.factories import MemberFactory, OperatorFactory


@pytest.fixture
def thresholds(db):
    """thresholds(adjustment=..., bulk_grant=...): set the approval settings (default 1000)."""

    def apply(*, adjustment: int = 1000, bulk_grant: int = 1000) -> ApprovalSettings:
        row = ApprovalSettings.get()
        row.adjustment_threshold, row.bulk_grant_threshold = adjustment, bulk_grant
        row.save()
        return row

    return apply


@pytest.fixture
def member(db):
    return MemberFactory(external_id="m-1")


@pytest.fixture
def maker(db):
    return OperatorFactory(username="maker")


@pytest.fixture
def checker(db):
    return OperatorFactory(username="checker")


def _with_permissions(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached


@pytest.fixture
def staff_client():
    """staff_client(user, *permission codenames) -> a logged-in admin client with those rights."""

    def make(user, *codenames: str) -> Client:
        client = Client()
        client.force_login(_with_permissions(user, *codenames))
        client.cookies["django_language"] = "en"  # assertions read English
        return client

    return make


def grant_file(rows, *, fmt: str = "csv", headers=("member", "points", "reason")) -> bytes:
    """A bulk grant file's bytes (CSV or XLSX) with a header row."""
    dataset = tablib.Dataset(*rows, headers=list(headers))
    if fmt == "xlsx":
        return dataset.export("xlsx")
    return dataset.export("csv").encode()


def upload_grant(rows, *, user, file_name: str = "grant.csv"):
    """Import a file's rows as the admin's confirm step does; returns (result, grant or None)."""
    dataset = tablib.Dataset(*rows, headers=["member", "points", "reason"])
    result = BulkGrantRowResource().import_data(
        dataset, dry_run=False, user=user, file_name=file_name
    )
    grant = BulkGrant.objects.filter(file_name=file_name).order_by("-pk").first()
    return result, grant


@pytest.fixture
def as_upload():
    """as_upload(content, name) -> an in-memory uploaded file."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    def make(content: bytes, name: str):
        return SimpleUploadedFile(name, io.BytesIO(content).getvalue())

    return make


@pytest.fixture
def english_admin(admin_client):
    """The superuser's admin client, reading pages in English."""
    admin_client.cookies["django_language"] = "en"
    return admin_client
