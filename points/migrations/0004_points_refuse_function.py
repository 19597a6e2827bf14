"""points_refuse(reason): raise from inside a SQL statement, so that the whole statement (the
one-statement earn of points.services) is undone and the caller learns why."""

from django.db import migrations

CREATE = """
CREATE FUNCTION points_refuse(reason text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'points_refuse: ' || reason;
END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS points_refuse(text);"


class Migration(migrations.Migration):
    dependencies = [("points", "0003_default_programme")]

    operations = [migrations.RunSQL(CREATE, DROP)]
