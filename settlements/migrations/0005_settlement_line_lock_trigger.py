"""On PostgreSQL, refuse UPDATE and DELETE of locked settlement lines in the database itself.

The model layer refuses too (``SettlementLine.save``/``delete`` and its queryset), but an
approved line must not change whatever the client: a raw SQL statement, another program,
a console session. The trigger fires only for rows whose *old* ``locked`` is true, so the
approval's own ``UPDATE ... SET locked = true`` (false -> true) passes. TRUNCATE is not a
row operation and is not refused (test databases are flushed with it).

SQLite has no such trigger: the operation does nothing there.
"""

from django.db import migrations

FUNCTION = "settlements_line_refuse_locked"
TRIGGER = "settlements_line_locked"
TABLE = "settlements_settlementline"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION
        'settlement line % is locked (its run % was approved): % refused; correct it with a restatement',
        OLD.id, OLD.run_id, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE};
CREATE TRIGGER {TRIGGER}
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW
    WHEN (OLD.locked)
    EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE};
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # No parameters: the function body's % are RAISE placeholders, not the driver's.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(CREATE)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0004_settlement_runs"),
    ]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
