"""Default RFM segments and the growth settings row, which operators then change in admin.

Reversible: removing them drops only the seeded segments that no membership refers to yet.
"""

from django.db import migrations

# code, name, English name, (R, F, M) ranges, description
DEFAULT_SEGMENTS = [
    (
        "high_value",
        "高价值",
        "High value",
        (4, 5),
        (4, 5),
        (4, 5),
        "Bought recently, often and for a lot.",
    ),
    ("active", "活跃", "Active", (4, 5), (3, 5), (1, 5), "Recent and regular buyers."),
    (
        "potential",
        "潜力",
        "Potential",
        (3, 5),
        (1, 2),
        (3, 5),
        "Recent buyers who spend well but rarely: worth a nudge.",
    ),
    ("new", "新客", "New", (5, 5), (1, 1), (1, 5), "First purchase very recently."),
    (
        "at_risk",
        "流失风险",
        "At risk",
        (2, 2),
        (3, 5),
        (3, 5),
        "Were good customers, have not bought for a while.",
    ),
    ("dormant", "沉睡", "Dormant", (1, 1), (1, 5), (1, 5), "Longest since the last purchase."),
    (
        "no_purchase",
        "未购买",
        "No purchase yet",
        (0, 0),
        (0, 0),
        (0, 0),
        "Members with no purchase recorded.",
    ),
]


def seed(apps, schema_editor):
    Segment = apps.get_model("members", "Segment")
    GrowthSettings = apps.get_model("members", "GrowthSettings")
    Tier = apps.get_model("members", "Tier")
    GrowthSettings.objects.get_or_create(pk=1)
    for position, (code, name, name_en, r, f, m, description) in enumerate(DEFAULT_SEGMENTS):
        Segment.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "name_en": name_en,
                "description": description,
                "recency_min": r[0],
                "recency_max": r[1],
                "frequency_min": f[0],
                "frequency_max": f[1],
                "monetary_min": m[0],
                "monetary_max": m[1],
                "position": position,
            },
        )
    Tier.objects.filter(code="member", name_en="").update(name_en="Member")


def unseed(apps, schema_editor):
    Segment = apps.get_model("members", "Segment")
    codes = [row[0] for row in DEFAULT_SEGMENTS]
    Segment.objects.filter(code__in=codes, memberships__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("members", "0005_tier_benefits_growth_segments")]

    operations = [migrations.RunPython(seed, unseed)]
