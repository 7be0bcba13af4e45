"""Writes of meter data: receiving a file, and importing it.

``meter_data_import_create`` stores an uploaded file and its record (or answers
``duplicate`` at once for a file imported before); ``meter_data_import_run`` imports it
(the Celery task and the command call it); ``meter_data_import_submit`` does both, in the
background for large files.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import IO

from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from enrollment.models import Meter
from settlements.importer import (
    ProgressCallback,
    complete_import_of,
    duplicate_message,
    run_import,
    sha256_of,
)
from settlements.meterdata import FORMATS
from settlements.models import MeterDataImport

logger = logging.getLogger(__name__)

#: Files larger than this (bytes) are imported by a worker on the "meterdata" queue.
BACKGROUND_THRESHOLD_BYTES = 2 * 1024 * 1024
#: A running import whose heartbeat is older than this was abandoned by a killed worker
#: (the task time limit is 15 minutes) and may be claimed again.
ABANDONED_AFTER = dt.timedelta(minutes=16)


def _chunks(stream: IO[bytes]) -> Iterable[bytes]:
    stream.seek(0)
    while block := stream.read(1024 * 1024):
        yield block
    stream.seek(0)


def meter_data_import_create(
    *,
    stream: IO[bytes],
    file_name: str,
    by: AbstractBaseUser | None,
    format: str = "",
    meter: Meter | None = None,
    correction: bool = False,
    valid_rows_only: bool = False,
    time_zone: str = "",
) -> MeterDataImport:
    """Store a meter data file and return its import record.

    ``stream`` is a seekable binary stream (an upload, an open file). When an import that
    stored all of the file (succeeded, no error) has the same SHA-256 and the same chosen
    ``meter`` (none = none) the file is not stored again: the record comes back with status
    ``duplicate`` and ``duplicate_of`` set, and nothing else happens. The same bytes for
    another chosen meter are another import, and so is a file stored only in part before.
    Otherwise the record is ``pending``; ``meter_data_import_run`` imports it. ``format`` is
    "" (detect) or one of ``settlements.meterdata.FORMATS``; raises ValueError for another.
    """
    if format and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    digest = sha256_of(_chunks(stream))
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    record = MeterDataImport(
        file_name=file_name[:255],
        file_size=size,
        sha256=digest,
        requested_format=format,
        meter=meter,
        correction=correction,
        valid_rows_only=valid_rows_only,
        time_zone=time_zone,
        created_by=by,
    )
    original = complete_import_of(sha256=digest, meter_id=meter.pk if meter else None)
    if original is not None:
        record.status = MeterDataImport.Status.DUPLICATE
        record.duplicate_of = original
        record.finished_at = timezone.now()
        record.message = duplicate_message(original)
        record.save()
        return record
    record.save()
    record.file.save(file_name, File(stream, name=file_name), save=False)
    record.save(update_fields=["file"])
    return record


def meter_data_import_run(
    *, data_import_id: int, on_progress: ProgressCallback | None = None
) -> MeterDataImport | None:
    """Import the file of a pending import and return the finished record.

    Claims the record first (``pending`` -> ``running``, or a ``running`` one abandoned by a
    killed worker), so a redelivered task does nothing and returns None. A file that
    another import for the same chosen meter stored completely meanwhile ends as
    ``duplicate``.
    An unexpected error marks the import ``failed`` (nothing stored: the merge is one
    transaction) and is raised again.
    """
    now = timezone.now()
    claimable = Q(status=MeterDataImport.Status.PENDING) | Q(
        status=MeterDataImport.Status.RUNNING, heartbeat_at__lt=now - ABANDONED_AFTER
    )
    claimed = MeterDataImport.objects.filter(claimable, pk=data_import_id).update(
        status=MeterDataImport.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    record = MeterDataImport.objects.get(pk=data_import_id)
    original = complete_import_of(sha256=record.sha256, meter_id=record.meter_id)
    if original is not None:
        record.status = MeterDataImport.Status.DUPLICATE
        record.duplicate_of = original
        record.finished_at = timezone.now()
        record.message = duplicate_message(original)
        record.save(update_fields=["status", "duplicate_of", "finished_at", "message"])
        return record
    try:
        return run_import(record, on_progress=on_progress)
    except Exception as error:
        logger.exception("meter data import %s failed", data_import_id)
        MeterDataImport.objects.filter(pk=data_import_id).update(
            status=MeterDataImport.Status.FAILED,
            finished_at=timezone.now(),
            message=f"The import failed unexpectedly ({type(error).__name__}); nothing was "
            "stored. The error was logged.",
        )
        raise


def meter_data_import_submit(
    *, data_import: MeterDataImport, background: bool | None = None
) -> MeterDataImport:
    """Import a pending record now or hand it to a worker; return the record.

    ``background`` None decides by size (``BACKGROUND_THRESHOLD_BYTES``). In the background
    the task is enqueued once the current transaction commits; the record stays ``pending``
    until a worker claims it. Records that are not pending (duplicates) are returned as is.
    """
    if data_import.status != MeterDataImport.Status.PENDING:
        return data_import
    if background is None:
        background = data_import.file_size > BACKGROUND_THRESHOLD_BYTES
    if background:
        from settlements.tasks import meter_data_import_task

        transaction.on_commit(
            lambda: meter_data_import_task.apply_async(args=(data_import.pk,), queue="meterdata")
        )
        return data_import
    try:
        meter_data_import_run(data_import_id=data_import.pk)
    except Exception:  # noqa: BLE001, S110 - recorded as failed on the record, logged above
        pass
    data_import.refresh_from_db()
    return data_import
