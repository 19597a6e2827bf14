"""SQL shared by the members services and selectors: the growth and tier settings as a CTE."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from members.models import GrowthSettings

# Every statement below reads the settings rows itself (no extra round trip); a missing row (a
# test emptied the tables) counts as the model's defaults.
SETTINGS_CTE = """
cfg AS (
    SELECT COALESCE((SELECT time_zone FROM points_programmesettings WHERE id = 1),
                    %(default_zone)s) AS zone,
           COALESCE(gs.growth_per_unit, %(default_rate)s) AS growth_per_unit,
           COALESCE(gs.window_months, %(default_window)s) AS window_months,
           COALESCE(gs.tier_period_months, %(default_period)s) AS period_months,
           COALESCE(gs.max_tiers_down, %(default_max_down)s) AS max_down
      FROM (SELECT 1) AS one LEFT JOIN members_growthsettings gs ON gs.id = 1
),
bounds AS (
    -- Months are counted on the programme's calendar: 12 months before 31 March is 31 March.
    SELECT ((%(now)s::timestamptz AT TIME ZONE c.zone) - make_interval(months => c.window_months))
               AT TIME ZONE c.zone AS window_start,
           ((%(now)s::timestamptz AT TIME ZONE c.zone) + make_interval(months => c.period_months))
               AT TIME ZONE c.zone AS new_period_end
      FROM cfg c
)"""


def settings_params(now: datetime) -> dict:
    def default(field: str):
        return GrowthSettings._meta.get_field(field).default

    return {
        "now": now,
        "default_zone": settings.TIME_ZONE,
        "default_rate": default("growth_per_unit"),
        "default_window": default("window_months"),
        "default_period": default("tier_period_months"),
        "default_max_down": default("max_tiers_down"),
    }
