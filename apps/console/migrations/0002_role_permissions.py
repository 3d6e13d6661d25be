from django.db import migrations


def grant(apps, schema_editor):
    from apps.console.roles import grant_console_permissions

    grant_console_permissions(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0001_initial"),
        ("api", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("ledger", "__first__"),
        ("state", "__first__"),
        ("validators", "__first__"),
        ("evidence", "__first__"),
        ("mempool", "__first__"),
        ("audit", "__first__"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
