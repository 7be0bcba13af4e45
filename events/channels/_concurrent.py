"""Concurrent sends for transports with an asynchronous client: one event loop per process.

A send task runs in an ordinary (synchronous) worker thread and records every answer in the
database with the ORM, which must not be called from inside an event loop. So the provider
calls run on one asyncio loop in a daemon thread of the worker process, shared by all of
its send tasks (and so by one connection pool per provider), and each answer travels back
to the task's thread through a queue as soon as it arrives:

    for answers in send_concurrently(send_one, messages, deadline=...):
        record(answers)    # in the task's thread, while the others are still in flight

Each time, the task takes every answer that has arrived, so it records them in one
database write (one commit instead of one per message) and never waits for an answer
that has not come yet to record the ones it has.

At most :data:`SEND_CONCURRENCY` of one batch are in flight at once. With a provider that
answers in 200 ms this sends a batch of 100 in about two seconds instead of twenty; on a
loopback stub it still halves the CPU a message costs, since the asynchronous client does
less per request than the synchronous one.

The loop is created on first use in the process that sends (a prefork worker's child, not
its parent) and again after a fork.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Final, Protocol, TypeVar

logger = logging.getLogger(__name__)

#: Provider calls of one batch in flight at once.
SEND_CONCURRENCY: Final = 10

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

_NOT_STARTED: Final = object()
_FINISHED: Final = object()


class _Closable(Protocol):
    async def close(self) -> None: ...


class _ProcessLoop:
    """The process's event loop thread, started on first use and after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        # Clients holding sessions on the loop: closed there when the process exits.
        self._clients: weakref.WeakSet[_Closable] = weakref.WeakSet()

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="transport-event-loop", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def close_on_exit(self, client: _Closable) -> None:
        """Await ``client.close()`` on the loop when the process exits (closing the
        sessions it opened there). Held weakly: a client dropped earlier is not kept."""
        with self._lock:
            self._clients.add(client)

    def close(self) -> None:
        with self._lock:
            loop, clients = self._loop, list(self._clients)
            if loop is None or self._pid != os.getpid():
                return
            self._loop = None

        async def close_all() -> None:
            for client in clients:
                try:
                    await client.close()
                except Exception:  # noqa: BLE001 - exiting; nothing left to tell
                    logger.debug("closing a transport client failed", exc_info=True)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=5)
        except Exception:  # noqa: BLE001 - exiting
            logger.debug("closing the transport event loop failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)


process_loop: Final = _ProcessLoop()
atexit.register(process_loop.close)


def send_concurrently(
    send: Callable[[Item], Awaitable[Outcome]],
    items: Sequence[Item],
    *,
    deadline: float,
    concurrency: int = SEND_CONCURRENCY,
) -> Iterator[list[tuple[int, Outcome | Exception]]]:
    """Await ``send(item)`` for each item on the process loop, ``concurrency`` at a time.

    Yields lists of ``(index, outcome)``: waits for the next answer, then takes every
    other answer that has arrived by then, so the caller handles them together while
    the rest are in flight. An exception ``send`` raised is yielded as the outcome. An
    item whose turn comes after ``deadline`` (a ``time.monotonic()`` value) is not sent
    and not yielded; the first item always is. The caller may stop iterating at any
    time: calls already in flight still finish on the loop, their answers dropped.
    """
    answers: queue.SimpleQueue = queue.SimpleQueue()

    async def run_all() -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, item: Item) -> None:
            async with gate:
                if index and time.monotonic() >= deadline:
                    answers.put((index, _NOT_STARTED))
                    return
                try:
                    outcome: object = await send(item)
                except Exception as exc:  # noqa: BLE001 - yielded to the caller
                    outcome = exc
                answers.put((index, outcome))

        try:
            await asyncio.gather(*(one(index, item) for index, item in enumerate(items)))
        finally:
            answers.put((None, _FINISHED))

    future = asyncio.run_coroutine_threadsafe(run_all(), process_loop.get())
    finished = False
    while not finished:
        arrived = [answers.get()]
        while not answers.empty():
            arrived.append(answers.get_nowait())
        group = []
        for index, outcome in arrived:
            if outcome is _FINISHED:
                finished = True
            elif outcome is not _NOT_STARTED:
                group.append((index, outcome))
        if group:
            yield group
    future.result()  # re-raises what went wrong outside the sends themselves


__all__ = ["SEND_CONCURRENCY", "process_loop", "send_concurrently"]
