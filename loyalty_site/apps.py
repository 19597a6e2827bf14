from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LoyaltySiteConfig(AppConfig):
    name = "loyalty_site"
    verbose_name = _("Loyalty programme")
