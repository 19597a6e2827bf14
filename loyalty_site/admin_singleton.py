"""The admin of a settings singleton (loyalty_site.models.SingletonSettings)."""

from __future__ import annotations

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse


class SingletonAdmin(admin.ModelAdmin):
    """One settings row: the change list opens its change form; never added or deleted here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        row = self.model.get()
        opts = self.model._meta
        return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]))
