"""A meter data file stored only in part may be imported again.

A valid-rows import that left rows out (rows of a meter not registered yet, say) succeeds
with errors; the same file imported again once the meters are registered stores the rest.
So only a complete import (succeeded with ``error_count`` 0) takes the file and its chosen
meter for good. The new constraint is looser than 0012's, so existing rows satisfy it;
reversing fails once a file stored in part has been imported again.
"""

import django.db.models.functions.comparison
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0012_meter_data_import_one_success_per_meter"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="meterdataimport",
            name="meterdataimport_one_success_per_file_meter",
        ),
        migrations.AddConstraint(
            model_name="meterdataimport",
            constraint=models.UniqueConstraint(
                models.F("sha256"),
                django.db.models.functions.comparison.Coalesce("meter", models.Value(0)),
                condition=models.Q(("error_count", 0), ("status", "succeeded")),
                name="meterdataimport_one_complete_import_per_file_meter",
            ),
        ),
    ]
