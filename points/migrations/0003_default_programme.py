"""The default programme of api.md: its settings row with the documented defaults."""

from django.conf import settings
from django.db import migrations


def create_programme_settings(apps, schema_editor):
    ProgrammeSettings = apps.get_model("points", "ProgrammeSettings")
    # The other fields take their model defaults: 100 points = 1.00 CNY, expiry 12 months at the
    # end of the day, no pending window, 1 point per 1.00 spent, refunds take other points.
    ProgrammeSettings.objects.get_or_create(pk=1, defaults={"time_zone": settings.TIME_ZONE})


def remove_programme_settings(apps, schema_editor):
    apps.get_model("points", "ProgrammeSettings").objects.filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("points", "0002_ledger")]

    operations = [migrations.RunPython(create_programme_settings, remove_programme_settings)]
