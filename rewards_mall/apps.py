from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RewardsMallConfig(AppConfig):
    name = "rewards_mall"
    verbose_name = _("Rewards mall")
