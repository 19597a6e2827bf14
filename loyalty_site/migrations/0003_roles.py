"""The role groups (loyalty_site/roles.py). On a new database the permissions do not exist yet
while migrations run; the post_migrate receiver gives the groups theirs right after."""

from django.db import migrations

from loyalty_site.roles import ROLES, apply_roles


def create_roles(apps, schema_editor):
    apply_roles(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
        using=schema_editor.connection.alias,
    )


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(
        name__in=[role.code for role in ROLES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty_site", "0002_api_call_record_and_audit_trail"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
