"""Frozen dataclass instances built without their ``__init__``, for the hot paths only.

A season run makes some 10,000 outcomes, 10,000 assessments and 11,000 lines. A frozen
dataclass's ``__init__`` sets each field through ``object.__setattr__`` and runs its checks;
for values this package has just computed (known kinds, finite Decimals, fresh dicts) those
steps are a fifth of the calculation. :func:`unchecked` sets the fields as ``__init__``
would, all at once, and checks nothing: the caller guarantees what ``__init__`` would have.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def unchecked(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of the frozen dataclass ``cls`` holding exactly ``fields`` (every field,
    by name), made without ``__init__`` or ``__post_init__``."""
    instance = object.__new__(cls)
    object.__setattr__(instance, "__dict__", fields)
    return instance
