"""A meter data file succeeds at most once per chosen meter, not once in all.

The same bytes uploaded for another chosen meter (a utility download or Green Button file
first imported to the wrong meter) are another import. No meter chosen counts as one
choice: ``COALESCE(meter_id, 0)``, since NULLs never collide in a unique index. The new
constraint is looser than the old one, so existing rows satisfy it; reversing fails once a
file has succeeded for two meters.
"""

import django.db.models.functions.comparison
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("enrollment", "0004_firm_service_levels"),
        ("settlements", "0011_settlement_run_discarded_record"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="meterdataimport",
            name="meterdataimport_one_success_per_file",
        ),
        migrations.AddConstraint(
            model_name="meterdataimport",
            constraint=models.UniqueConstraint(
                models.F("sha256"),
                django.db.models.functions.comparison.Coalesce("meter", models.Value(0)),
                condition=models.Q(("status", "succeeded")),
                name="meterdataimport_one_success_per_file_meter",
            ),
        ),
    ]
