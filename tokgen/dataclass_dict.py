"""`from_fields`: build a config dataclass from a plain dict, refusing keys it does not have.

Every config that travels as a dict (``config.json``, a checkpoint's hyperparameters, a Hydra node)
comes back through here, so a misspelt or stale key is an error naming the class and its fields
instead of a ``TypeError`` from the constructor, or a value silently ignored.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_fields(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**data)`` after checking every key of ``data`` is a field of the dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(data) - known):
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(known)}")
    return cls(**data)
