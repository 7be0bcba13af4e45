"""Loopback stub servers imitating the notification providers.

Each stub listens on 127.0.0.1 on an ephemeral port, runs in background threads, records
what it received, and can be told to fail in the ways the real provider fails. They are
plain classes (``start()`` / ``stop()`` or ``with``) so benchmarks can use them outside
pytest; ``tests.stubs.fixtures`` wraps them in pytest fixtures.
"""
