"""Opening meter data sources: paths, bytes or binary streams, with a peek at the first bytes."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

Source = str | os.PathLike[str] | bytes | BinaryIO

#: Bytes read up front for format detection and for the CSV preamble.
HEAD_BYTES = 64 * 1024


class _PrefixedReader(io.RawIOBase):
    """A read-only stream that serves ``prefix`` and then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Opened:
    """A source prepared for one or more passes.

    ``head`` holds up to ``HEAD_BYTES`` first bytes. ``open()`` is a context manager giving a
    binary stream positioned at the start of the data; a path is reopened for each pass, a
    seekable stream is rewound, and a one-shot stream can be read only once unless it was
    spooled with ``rewindable=True``.
    """

    def __init__(self, source: Source, *, rewindable: bool = False) -> None:
        self._path: str | None = None
        self._stream: BinaryIO | None = None
        self._start = 0
        self._used = False
        if isinstance(source, str | os.PathLike):
            self._path = os.fspath(source)
            with open(self._path, "rb") as f:
                self.head = f.read(HEAD_BYTES)
            return
        if isinstance(source, bytes | bytearray | memoryview):
            source = io.BytesIO(bytes(source))
        stream = source
        if isinstance(stream, io.TextIOBase):
            raise TypeError("meter data streams must be opened in binary mode")
        if stream.seekable():
            self._start = stream.tell()
            self.head = stream.read(HEAD_BYTES)
            stream.seek(self._start)
            self._stream = stream
        elif rewindable:
            # Green Button needs two passes; a one-shot upload stream goes to a temp file.
            spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
            while block := stream.read(1024 * 1024):
                spool.write(block)
            spool.seek(0)
            self.head = spool.read(HEAD_BYTES)
            spool.seek(0)
            self._stream = spool  # type: ignore[assignment]
        else:
            self.head = stream.read(HEAD_BYTES)
            self._stream = io.BufferedReader(_PrefixedReader(self.head, stream))  # type: ignore[assignment]
            self._start = -1

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """Yield a binary stream at the start of the data; close it afterwards if we opened it."""
        if self._path is not None:
            with open(self._path, "rb") as f:
                yield f
            return
        assert self._stream is not None
        if self._start >= 0:
            self._stream.seek(self._start)
        elif self._used:
            raise RuntimeError("a one-shot stream can be read only once")
        self._used = True
        yield self._stream
