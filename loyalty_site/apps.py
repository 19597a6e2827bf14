from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class LoyaltySiteConfig(AppConfig):
    name = "loyalty_site"
    verbose_name = _("Loyalty programme")

    def ready(self) -> None:
        from loyalty_site.roles import apply_roles_after_migrate

        # Roles get the permissions of models added later (loyalty_site/roles.py).
        post_migrate.connect(apply_roles_after_migrate, dispatch_uid="loyalty_site.roles")
