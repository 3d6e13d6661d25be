import uuid

import django.db.models.deletion
from django.db import migrations, models


def forget_unsealed_devices(apps, schema_editor):
    # Devices enrolled before secrets were sealed held them in plain text; they are dropped
    # (their users enroll again) rather than carried over.
    apps.get_model("console", "TotpDevice").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0004_signed_action_name"),
        ("keys", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forget_unsealed_devices, migrations.RunPython.noop),
        migrations.RemoveField(model_name="totpdevice", name="secret"),
        migrations.AddField(
            model_name="totpdevice",
            name="sealed_secret",
            field=models.ForeignKey(default=uuid.UUID(int=0),
                                    on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to="keys.sealedpayload"),
            preserve_default=False,
        ),
    ]
