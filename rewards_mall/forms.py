"""Forms of the member-facing mall pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from rewards_mall.services import MAX_QUANTITY

ADDRESS_FIELDS = ("recipient", "phone", "address", "city", "postcode")


class MallLoginForm(forms.Form):
    login = forms.CharField(
        label=_("Member number or phone"),
        max_length=128,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class RedeemForm(forms.Form):
    """The confirmation step: quantity, an address for goods, and the form's one-time token."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=64)
    quantity = forms.IntegerField(
        label=_("Quantity"), min_value=1, max_value=MAX_QUANTITY, initial=1
    )
    recipient = forms.CharField(label=_("Recipient"), max_length=64, required=False)
    phone = forms.CharField(
        label=_("Phone"),
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
    )
    address = forms.CharField(
        label=_("Address"),
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "street-address"}),
    )
    city = forms.CharField(label=_("City"), max_length=64, required=False)
    postcode = forms.CharField(label=_("Postcode"), max_length=16, required=False)

    def __init__(self, *args, needs_address: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.needs_address = needs_address
        for name in ("recipient", "phone", "address", "city"):
            self.fields[name].required = needs_address
        if not needs_address:
            for name in ADDRESS_FIELDS:
                del self.fields[name]

    def shipping_address(self) -> dict | None:
        if not self.needs_address:
            return None
        return {name: self.cleaned_data.get(name, "") for name in ADDRESS_FIELDS}
