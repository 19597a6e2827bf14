"""Audit rows for freezing, unfreezing and closing members (who, when, why)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

STATUS_CHOICES = [("active", "active"), ("frozen", "frozen"), ("closed", "closed")]


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0003_member_name_search_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MemberStatusChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "from_status",
                    models.CharField(
                        choices=STATUS_CHOICES, max_length=16, verbose_name="from status"
                    ),
                ),
                (
                    "to_status",
                    models.CharField(
                        choices=STATUS_CHOICES, max_length=16, verbose_name="to status"
                    ),
                ),
                ("reason", models.TextField(verbose_name="reason")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="changed at"
                    ),
                ),
                (
                    "member",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="status_changes",
                        to="members.member",
                        verbose_name="member",
                    ),
                ),
                (
                    "operator",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="operator",
                    ),
                ),
            ],
            options={
                "verbose_name": "member status change",
                "verbose_name_plural": "member status changes",
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["member", "-created_at"], name="member_status_change_idx")
                ],
            },
        ),
    ]
