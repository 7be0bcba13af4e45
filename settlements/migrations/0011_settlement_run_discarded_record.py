"""A discarded settlement run stays on record, and takes no line.

Discarding a draft or calculated run used to delete its row: nothing recorded that the
version had existed, and the next restatement of the period took its number again. From
now on the run's lines are deleted but the row stays, with the new status ``discarded``
and who discarded it, when and why (``discarded_by``, ``discarded_at``,
``discard_reason``; a check constraint keeps a discarded run from lacking any of them);
version numbers count discarded runs, so none is given twice. Runs discarded before this
migration are gone: there is nothing to recreate.

On PostgreSQL the triggers of migration 0009 refuse lines inserted into, or moved to, an
approved, exported or superseded run; their functions now refuse a discarded run too
(``restrict_violation``, with its own message), as the model layer does
(``settlements.models._refuse_lines_of_locked_runs``). Reversing puts 0009's functions
back; the triggers themselves are unchanged.
"""

from django.conf import settings
from django.db import migrations, models

LINES = "settlements_settlementline"
RUNS = "settlements_settlementrun"
#: ``SettlementRun.LOCKED_STATUSES`` and ``discarded`` (``CLOSED_STATUSES``), spelled out: a
#: migration does not import the model.
LOCKED = "'approved', 'exported', 'superseded'"
CLOSED = f"{LOCKED}, 'discarded'"

REFUSE_DISCARDED = f"""
CREATE OR REPLACE FUNCTION settlements_line_runs_exist() RETURNS trigger AS $$
DECLARE
    missing bigint;
    closed_run record;
BEGIN
    PERFORM 1 FROM {RUNS} WHERE id IN (SELECT DISTINCT run_id FROM new_lines) FOR KEY SHARE;
    SELECT id, status INTO closed_run FROM {RUNS}
        WHERE id IN (SELECT DISTINCT run_id FROM new_lines) AND status IN ({CLOSED}) LIMIT 1;
    IF FOUND THEN
        IF closed_run.status = 'discarded' THEN
            RAISE EXCEPTION 'settlement run % is discarded: it stays on record only, new lines are refused',
                closed_run.id
                USING ERRCODE = 'restrict_violation';
        END IF;
        RAISE EXCEPTION 'settlement run % is %: its lines never change, new lines are refused',
            closed_run.id, closed_run.status
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
    IF run_status = 'discarded' THEN
        RAISE EXCEPTION 'settlement run % is discarded: it stays on record only, line % cannot move to it',
            NEW.run_id, NEW.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF run_status IN ({LOCKED}) THEN
        RAISE EXCEPTION 'settlement run % is %: its lines never change, line % cannot move to it',
            NEW.run_id, run_status, NEW.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""  # noqa: S608 - fixed table names, no input

#: Migration 0009's functions, as they were.
REFUSE_LOCKED_ONLY = f"""
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
"""  # noqa: S608 - fixed table names, no input


def _execute(schema_editor, sql: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # No parameters: the bodies' % are RAISE placeholders, not the driver's.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


def refuse_discarded(apps, schema_editor) -> None:
    _execute(schema_editor, REFUSE_DISCARDED)


def refuse_locked_only(apps, schema_editor) -> None:
    _execute(schema_editor, REFUSE_LOCKED_ONLY)


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0010_settlement_run_billed_parties"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="settlementrun",
            name="discard_reason",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="settlementrun",
            name="discarded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="settlementrun",
            name="discarded_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="settlementrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("draft", "Draft"),
                    ("calculating", "Calculating"),
                    ("calculated", "Calculated"),
                    ("approved", "Approved"),
                    ("exported", "Exported"),
                    ("superseded", "Superseded"),
                    ("discarded", "Discarded"),
                ],
                default="draft",
                max_length=12,
            ),
        ),
        migrations.AddConstraint(
            model_name="settlementrun",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "discarded"), _negated=True),
                    models.Q(
                        ("discarded_at__isnull", False),
                        ("discarded_by__isnull", False),
                        models.Q(("discard_reason", ""), _negated=True),
                    ),
                    _connector="OR",
                ),
                name="settlement_run_discard_recorded",
            ),
        ),
        migrations.RunPython(refuse_discarded, refuse_locked_only, elidable=False),
    ]
