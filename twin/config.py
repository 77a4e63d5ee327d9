"""Configs are data: TOML files validated into frozen dataclasses at load time.

``load_config(path, Schema)`` reads a TOML file (never evaluates it) and builds ``Schema``,
a frozen dataclass whose fields may be ints, floats, strings, bools, ``Literal``s, tuples,
lists, dicts, ``Optional`` values or nested dataclasses. Unknown keys and values of the wrong
type raise :class:`twin.errors.InputError` naming the file, the dotted key and what was
expected. ``apply_overrides`` sets dotted keys (``"train.lr=3e-4"``) for sweeps and the CLI.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from twin.errors import InputError

T = TypeVar("T")


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file into a dict; a missing or malformed file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "an existing TOML config file", "no such file")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InputError(path, "TOML syntax", "valid TOML", str(e)) from None


def load_config(path: str | os.PathLike, schema: type[T], overrides: list[str] = ()) -> T:
    """Read ``path`` (TOML), apply ``overrides`` (``key.sub=value``) and validate into ``schema``."""
    data = apply_overrides(read_toml(path), overrides, path)
    return from_dict(schema, data, path)


def from_dict(schema: type[T], data: dict[str, Any], path: str | os.PathLike | None = None,
              prefix: str = "") -> T:
    """Build the frozen dataclass ``schema`` from ``data``, checking every key and type."""
    if not isinstance(data, dict):
        raise InputError(path, prefix or "config", f"a table for {schema.__name__}", type(data).__name__)
    hints = get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(path, _join(prefix, unknown[0]),
                         f"one of the keys {sorted(fields)}", "an unknown key")
    kwargs = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], path, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError(path, key, "a value (this key is required)", "nothing")
    return schema(**kwargs)


def to_dict(config: Any) -> Any:
    """A plain, TOML/JSON-ready copy of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                    path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``"a.b.c=value"`` set; the value is parsed as TOML."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise InputError(path, f"override {item!r}", "the form key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        set_dotted(out, key.strip(), value)
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key == "a.b.c"``, creating tables as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _coerce(tp: Any, value: Any, path: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path, key)
            except InputError as e:
                errors.append(e.expected)
        raise InputError(path, key, " or ".join(errors), repr(value))
    if origin is Literal:
        if value not in get_args(tp):
            raise InputError(path, key, f"one of {list(get_args(tp))}", repr(value))
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(path, key, "a list", repr(value))
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise InputError(path, key, f"a list of {len(args)} items", f"{len(value)} items")
            items = [_coerce(a, v, path, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(inner, v, path, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(path, key, "a table", repr(value))
        args = get_args(tp)
        inner = args[1] if args else Any
        return {k: _coerce(inner, v, path, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(path, key, "true or false", repr(value))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(path, key, "an integer", repr(value))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(path, key, "a number", repr(value))
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(path, key, "a string", repr(value))
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise InputError(path, key, getattr(tp, "__name__", str(tp)), repr(value))


__all__ = ["read_toml", "load_config", "from_dict", "to_dict", "apply_overrides", "set_dotted"]
_ = typing
