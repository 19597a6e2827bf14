"""Expiry reminders work out of the box: the settings row (30 and 7 days, every channel) and a
template per channel in Chinese and English, edited afterwards in admin."""

from django.db import migrations

TEMPLATES = {
    "email": {
        "subject_zh_hans": '您的 {{ points }} 积分将于 {{ expires_on|date:"Y-m-d" }} 过期',
        "body_zh_hans": (
            "{{ name }}，您好：\n\n"
            '您有 {{ points }} 积分将于 {{ expires_on|date:"Y年n月j日" }} 到期'
            "（还剩 {{ days_left }} 天），到期后将自动清零。\n"
            "{% if mall_url %}欢迎前往积分商城兑换心仪好礼：{{ mall_url }}"
            "{% else %}欢迎前往积分商城兑换心仪好礼。{% endif %}\n\n"
            "此邮件由系统自动发送，请勿直接回复。"
        ),
        "subject_en": '{{ points }} of your points expire on {{ expires_on|date:"Y-m-d" }}',
        "body_en": (
            "Hello {{ name }},\n\n"
            '{{ points }} of your points expire on {{ expires_on|date:"j F Y" }} '
            "({{ days_left }} day{{ days_left|pluralize }} left). Use them in the rewards mall "
            "before then{% if mall_url %}: {{ mall_url }}{% else %}.{% endif %}\n\n"
            "This message was sent automatically; please do not reply."
        ),
    },
    "sms": {
        "subject_zh_hans": "",
        "body_zh_hans": (
            '【积分提醒】{{ name }}，您有{{ points }}积分将于{{ expires_on|date:"Y-m-d" }}过期，'
            "请及时使用。"
        ),
        "subject_en": "",
        "body_en": (
            '[Points reminder] {{ name }}, {{ points }} points expire on {{ expires_on|date:"Y-m-d" }}.'
            " Use them before they go."
        ),
    },
    "inbox": {
        "subject_zh_hans": "积分即将过期",
        "body_zh_hans": (
            '您有 {{ points }} 积分将于 {{ expires_on|date:"Y-m-d" }} 过期'
            "（还剩 {{ days_left }} 天），快去积分商城兑换吧。"
        ),
        "subject_en": "Points expiring soon",
        "body_en": (
            '{{ points }} points expire on {{ expires_on|date:"Y-m-d" }} '
            "({{ days_left }} day{{ days_left|pluralize }} left). Redeem them in the mall "
            "before then."
        ),
    },
}


def create_defaults(apps, schema_editor):
    ReminderSettings = apps.get_model("campaigns", "ReminderSettings")
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    ReminderSettings.objects.get_or_create(pk=1)
    for channel, texts in TEMPLATES.items():
        MessageTemplate.objects.get_or_create(channel=channel, defaults=texts)


def remove_defaults(apps, schema_editor):
    apps.get_model("campaigns", "MessageTemplate").objects.filter(channel__in=TEMPLATES).delete()
    apps.get_model("campaigns", "ReminderSettings").objects.filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_reminders")]

    operations = [migrations.RunPython(create_defaults, remove_defaults)]
