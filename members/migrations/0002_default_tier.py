"""The default programme's single tier, which every new member starts in (api.md)."""

from django.db import migrations


def create_entry_tier(apps, schema_editor):
    Tier = apps.get_model("members", "Tier")
    if not Tier.objects.exists():
        Tier.objects.create(code="member", name="会员 Member", rank=0, growth_threshold=0)


def remove_entry_tier(apps, schema_editor):
    Tier = apps.get_model("members", "Tier")
    Tier.objects.filter(code="member", members__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("members", "0001_initial")]

    operations = [migrations.RunPython(create_entry_tier, remove_entry_tier)]
