"""On PostgreSQL, check that a settlement line's run exists once per statement, not per row.

A foreign key constraint checks each inserted row on its own: a season run's ~11,000 lines
were ~11,000 lookups of the same run at the commit, a sixth of the calculation. The
constraint is replaced by triggers that keep its guarantees:

- After each INSERT statement on lines (COPY included), the runs the new lines name are
  locked ``FOR KEY SHARE`` (as the constraint's own check does: no other session can delete
  them until this transaction ends) and a line naming a run that does not exist is refused
  (``foreign_key_violation``). One lookup per distinct run, from the statement's
  transition table.
- Those runs must not be approved, exported or superseded: an approved run's lines never
  change, and that includes gaining a line (``restrict_violation``, as migration 0005's
  trigger answers an UPDATE or DELETE of a locked line). The model layer refuses it too.
- An UPDATE that changes a line's run is checked the same way, per row (the model layer
  never does it; the approval's ``UPDATE ... SET locked`` is not concerned).
- Deleting a run, or changing its id, while lines point at it is refused
  (``foreign_key_violation``, the constraint's NO ACTION). Through Django, ``PROTECT``
  refuses it first. Under READ COMMITTED (Django's default) the check's query sees lines
  another session committed while the delete waited for that session's lock.

The check is immediate (at the end of the statement), where the constraint was deferred
to the commit: a line can no longer be inserted before its run in the same transaction;
the platform never does. SQLite keeps no constraint on the column (``db_constraint=False``
for every database): ``PROTECT`` still refuses deleting a run with lines through Django.
"""

from django.db import migrations, models

LINES = "settlements_settlementline"
RUNS = "settlements_settlementrun"
#: The statuses of a run whose lines are locked (``SettlementRun.LOCKED_STATUSES``, spelled out:
#: a migration does not import the model).
LOCKED = "'approved', 'exported', 'superseded'"

CREATE = f"""
CREATE OR REPLACE FUNCTION settlements_line_runs_exist() RETURNS trigger AS $$
DECLARE
    missing bigint;
    locked_run record;
BEGIN
    PERFORM 1 FROM {RUNS} WHERE id IN (SELECT DISTINCT run_id FROM new_lines) FOR KEY SHARE;
    SELECT id, status INTO locked_run FROM {RUNS}
        WHERE id IN (SELECT DISTINCT run_id FROM new_lines) AND status IN ({LOCKED}) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement run % is %: its lines never change, new lines are refused',
            locked_run.id, locked_run.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    SELECT n.run_id INTO missing FROM new_lines n
        WHERE NOT EXISTS (SELECT 1 FROM {RUNS} r WHERE r.id = n.run_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'settlement run % does not exist: its lines are refused', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION settlements_line_run_exists() RETURNS trigger AS $$
DECLARE
    run_status text;
BEGIN
    SELECT status INTO run_status FROM {RUNS} WHERE id = NEW.run_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'settlement run % does not exist: line % cannot move to it',
            NEW.run_id, NEW.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF run_status IN ({LOCKED}) THEN
        RAISE EXCEPTION 'settlement run % is %: its lines never change, line % cannot move to it',
            NEW.run_id, run_status, NEW.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION settlements_run_keeps_lines() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {LINES} WHERE run_id = OLD.id) THEN
        RAISE EXCEPTION 'settlement run % has lines: % refused', OLD.id, TG_OP
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS settlements_line_runs_inserted ON {LINES};
CREATE TRIGGER settlements_line_runs_inserted
    AFTER INSERT ON {LINES}
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT
    EXECUTE FUNCTION settlements_line_runs_exist();

DROP TRIGGER IF EXISTS settlements_line_run_changed ON {LINES};
CREATE TRIGGER settlements_line_run_changed
    AFTER UPDATE OF run_id ON {LINES}
    FOR EACH ROW
    WHEN (OLD.run_id IS DISTINCT FROM NEW.run_id)
    EXECUTE FUNCTION settlements_line_run_exists();

DROP TRIGGER IF EXISTS settlements_run_deleted ON {RUNS};
CREATE TRIGGER settlements_run_deleted
    BEFORE DELETE ON {RUNS}
    FOR EACH ROW
    EXECUTE FUNCTION settlements_run_keeps_lines();

DROP TRIGGER IF EXISTS settlements_run_renumbered ON {RUNS};
CREATE TRIGGER settlements_run_renumbered
    BEFORE UPDATE OF id ON {RUNS}
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION settlements_run_keeps_lines();
"""  # noqa: S608 - fixed table names, no input

DROP = f"""
DROP TRIGGER IF EXISTS settlements_line_runs_inserted ON {LINES};
DROP TRIGGER IF EXISTS settlements_line_run_changed ON {LINES};
DROP TRIGGER IF EXISTS settlements_run_deleted ON {RUNS};
DROP TRIGGER IF EXISTS settlements_run_renumbered ON {RUNS};
DROP FUNCTION IF EXISTS settlements_line_runs_exist();
DROP FUNCTION IF EXISTS settlements_line_run_exists();
DROP FUNCTION IF EXISTS settlements_run_keeps_lines();
"""


def create_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # No parameters: the bodies' % are RAISE placeholders, not the driver's.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(CREATE)


def drop_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0008_settlement_run_background_calculation"),
    ]

    operations = [
        # The constraint goes (its per-row check with it); the triggers take its place.
        migrations.AlterField(
            model_name="settlementline",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.PROTECT,
                related_name="lines",
                to="settlements.settlementrun",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers, elidable=False),
    ]
