"""Writing many new rows at once: COPY on PostgreSQL, ``bulk_create`` elsewhere.

An event dispatch writes one Participation per targeted site and one Notification per
contact method in a single transaction, tens of thousands of rows while a manager waits.
Django's ``bulk_create`` prepares each value through its field (``get_db_prep_save``) and
sends each column as an array that psycopg escapes value by value; on PostgreSQL
:func:`insert_instances` instead reserves the ids from the table's sequence and writes the
rows as one COPY in text format: a 20,000-row dispatch's writes took a quarter of
``bulk_create``'s time when measured. :func:`new_instances` builds the unsaved objects
themselves a few times faster than keyword construction does.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from django.db import connections, models, router

#: Rows per write to the COPY stream.
_CHUNK = 2000

M = TypeVar("M", bound=models.Model)


def new_instances(model: type[M], rows: Iterable[Mapping[str, Any]]) -> list[M]:
    """Unsaved ``model`` objects, one per mapping of attribute names (``event_id``, not
    ``event``) to values; a field a row leaves out gets its default, a callable default
    called for each row (a fresh uuid, a fresh dict).

    Built with positional arguments in field order, as Django builds the objects it loads
    (``Model.from_db``): keyword construction looks up and checks every field by name and
    took three times as long for the 20,000 notifications of a large dispatch. Raises
    ``TypeError`` for a name that is not a concrete field's attribute.
    """
    fields = model._meta.concrete_fields
    names = {field.attname for field in fields}
    plan = [
        (field.attname, field.get_default if callable(field.default) else None,
         None if callable(field.default) else field.get_default())
        for field in fields
    ]  # fmt: skip
    objs = []
    for row in rows:
        unknown = row.keys() - names
        if unknown:
            raise TypeError(f"{model.__name__} has no field attribute {sorted(unknown)[0]!r}")
        objs.append(
            model(
                *[
                    row[name] if name in row else (make() if make else constant)
                    for name, make, constant in plan
                ]
            )
        )
    return objs


def copy_text(value: str) -> str:
    """``value`` as a field of PostgreSQL's COPY text format (backslash escapes)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value  # most texts: four scans, no copies


def _datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"a naive datetime cannot be stored with COPY ({value})")
    return value.isoformat()


def _any_text(value: Any) -> str:
    """A COPY text field for a value whose field type has no dedicated converter."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | decimal.Decimal | float | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return _datetime_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return copy_text(value)
    raise TypeError(f"cannot write {type(value).__name__} with COPY")


def _converter(field: models.Field) -> Callable[[Any], str]:
    """How a raw attribute value (not ``None``) of ``field`` becomes a COPY text field."""
    if isinstance(field, models.ForeignKey):
        return _converter(field.target_field)
    if isinstance(field, models.JSONField):
        return (field.encoder or json.JSONEncoder)(separators=(",", ":")).encode
    if isinstance(field, models.BooleanField):
        return lambda value: "t" if value else "f"
    if isinstance(field, models.DateTimeField):
        return _datetime_text
    if isinstance(field, models.CharField | models.TextField):
        return copy_text
    if isinstance(field, models.IntegerField | models.UUIDField):
        return str
    return _any_text


def insert_instances(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """Insert new, unsaved ``objs`` of ``model`` and set their primary keys.

    Behaves like ``model.objects.bulk_create(objs)`` for plain rows (no multi-table
    inheritance, no conflicts handling, no signals): ``auto_now``/``auto_now_add`` fields
    are filled, each object gets its pk and is marked saved. Runs in the caller's
    transaction. Raises ``ValueError`` for an object that already has a pk or a naive
    datetime.
    """
    if not objs:
        return
    database = connections[router.db_for_write(model)]
    if database.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=2000)
        return
    meta = model._meta
    pk = meta.pk
    if any(obj.pk is not None for obj in objs):
        raise ValueError(f"insert_instances writes new {meta.object_name} rows only")
    fields = [field for field in meta.concrete_fields if field is not pk]
    stamped = [
        f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    for field in stamped:
        for obj in objs:
            field.pre_save(obj, True)
    quote = database.ops.quote_name
    table = quote(meta.db_table)
    columns = ", ".join(quote(column) for column in [pk.column, *(f.column for f in fields)])
    # JSON text may hold backslashes and newlines: it is escaped after encoding.
    converters = [
        (field.attname, _converter(field), not isinstance(field, models.JSONField))
        for field in fields
    ]
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, pk.column, len(objs)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            chunk: list[str] = []
            for obj, pk_value in zip(objs, ids, strict=True):
                values = [str(pk_value)]
                for attname, convert, escaped in converters:
                    value = getattr(obj, attname)
                    if value is None:
                        values.append("\\N")
                    elif escaped:
                        values.append(convert(value))
                    else:
                        values.append(copy_text(convert(value)))
                chunk.append("\t".join(values))
                if len(chunk) == _CHUNK:
                    copy.write("\n".join(chunk) + "\n")
                    chunk = []
            if chunk:
                copy.write("\n".join(chunk) + "\n")
    for obj, pk_value in zip(objs, ids, strict=True):
        obj.pk = pk_value
        obj._state.adding = False
        obj._state.db = database.alias
