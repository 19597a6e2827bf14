"""An index for the admin's case-insensitive name-prefix search (UPPER(name) LIKE 'X%')."""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("members", "0002_default_tier")]

    operations = [
        migrations.AddIndex(
            model_name="member",
            index=models.Index(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("name"),
                    name="text_pattern_ops",
                ),
                name="member_name_upper_prefix_idx",
            ),
        ),
    ]
