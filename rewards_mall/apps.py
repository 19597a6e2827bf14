from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RewardsMallConfig(AppConfig):
    name = "rewards_mall"
    verbose_name = _("Rewards mall")

    def ready(self) -> None:
        from members.personal_data import register_erasure_step
        from rewards_mall.services import erase_mall_personal_data

        register_erasure_step(erase_mall_personal_data)
