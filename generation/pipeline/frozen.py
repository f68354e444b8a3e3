"""Frozen config sections: the typed view of the JSON config a round stores. Pure.

A section is a frozen dataclass whose fields are its keys, with today's defaults. `from_dict` reads a stored
section back; a key that a round stored before the key existed takes the value that applied then (the section's
`LEGACY`, where it differs from today's default), and an unknown key is refused. `as_dict` gives back exactly the
JSON that is stored and hashed (lists, not tuples). Lists are read as tuples and objects as read-only mappings,
so nothing reached through a section can be changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Self


class ConfigError(ValueError):
    """A config value is wrong; the message names the key."""


def freeze(value: Any) -> Any:
    """JSON as read-only values: lists as tuples, objects as read-only mappings."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    return value


def thaw(value: Any) -> Any:
    """The JSON of a frozen value: sections as dicts, tuples as lists, mappings as dicts."""
    if isinstance(value, Section):
        return value.as_dict()
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


def empty_mapping() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class Section:
    """Base of the config sections (no keys of its own)."""

    #: Values for keys missing from a stored section, where they differ from today's defaults: what a round
    #: that stored the section before the key existed ran with.
    LEGACY: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, path: str = "") -> Self:
        """The section of a stored (or just validated) config. `path` names the section in messages."""
        data = data or {}
        fields = _fields(cls)
        for key in data:
            if key not in fields:
                raise ConfigError(f"unknown config key {path + key!r}")
        values: dict[str, Any] = {}
        for name, section in fields.items():
            if section is not None:
                # An absent (or null) section reads as its legacy value, else as all its defaults.
                raw = data.get(name)
                values[name] = section.from_dict(
                    raw if raw is not None else cls.LEGACY.get(name), path=f"{path}{name}."
                )
            elif name in data:
                values[name] = freeze(data[name])
            elif name in cls.LEGACY:
                values[name] = freeze(cls.LEGACY[name])
        return cls(**values)

    @classmethod
    def of(cls, value: Self | Mapping[str, Any] | None) -> Self:
        """`value` itself when it is this section already, else read from its dict."""
        if value is None or isinstance(value, Mapping):
            return cls.from_dict(value)
        return value

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (a nested section is replaced whole)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The JSON stored for this section."""
        return {f.name: thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}


_FIELDS: dict[type[Section], dict[str, type[Section] | None]] = {}


def _fields(cls: type[Section]) -> dict[str, type[Section] | None]:
    """A section's keys, each with its section class when it is a nested section (declared with
    `default_factory=TheSection`), else None."""
    if cls not in _FIELDS:
        out: dict[str, type[Section] | None] = {}
        for f in dataclasses.fields(cls):
            factory = f.default_factory
            out[f.name] = factory if isinstance(factory, type) and issubclass(factory, Section) else None
        _FIELDS[cls] = out
    return _FIELDS[cls]
