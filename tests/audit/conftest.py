"""Fixtures of the audit trail and roles tests: users in role groups, admin form posts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from tests.factories import OperatorFactory


@pytest.fixture
def user_in_role(db):
    """user_in_role("operator") -> a logged-in Client of a staff user in that role's group."""

    def make(role: str, username: str | None = None) -> Client:
        user = OperatorFactory(username=username or f"{role}-user")
        user.groups.add(Group.objects.get(name=role))
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


def _form_values(form) -> dict:
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        if value is True:
            value = "on"
        data[form.add_prefix(name)] = value
    return data


def change_form_data(client: Client, url: str, **changes) -> dict:
    """The POST body of an admin change form as it is shown (inlines included, unchanged),
    with `changes` applied to the main form."""
    context = client.get(url).context
    data = _form_values(context["adminform"].form)
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_form_values(formset.management_form))
        data[f"{formset.prefix}-TOTAL_FORMS"] = len(formset.initial_forms)
        for form in formset.initial_forms:
            data.update(_form_values(form))
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}
