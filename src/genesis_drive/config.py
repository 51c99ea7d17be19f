"""Typed dataclass configs: dotted overrides, YAML override files, strict dict round trips.

Every area keeps its settings in (frozen) dataclasses and its named presets in a plain dict
``PRESETS = {"tiny": make_tiny, "full": FullConfig()}`` (values are instances or zero-argument
functions). This module only *reads and writes* such configs; it holds no registry.

- ``apply_overrides(cfg, ["train.lr=1e-4", "model.channels=32,64"])`` returns a new config; each
  value is parsed by the declared type of its field (``int``, ``float``, ``bool``, ``str``,
  ``Path``, ``tuple[...]``, ``list[...]``, ``Optional[...]`` / ``X | None``, ``Literal[...]``).
- ``load_yaml_overrides(path)`` reads a nested YAML mapping into the same dotted form.
- ``config_to_dict`` / ``config_from_dict`` (strict: unknown or missing keys are errors);
  ``config_from_saved`` for configs written by an earlier version (missing keys take their defaults).
- ``save_config`` / ``load_config``: YAML or JSON by file suffix, written atomically.

Every mistake raises :class:`~genesis_drive.errors.ConfigError` naming the dotted key, the
expected type and the offending value.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from .data.atomic import atomic_write_text
from .errors import ConfigError

__all__ = [
    "apply_overrides",
    "load_yaml_overrides",
    "config_to_dict",
    "config_from_dict",
    "config_from_saved",
    "save_config",
    "load_config",
    "resolve_preset",
    "parse_value",
]

C = TypeVar("C")

_NONE_WORDS = ("none", "null", "~")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
_INT_RE = re.compile(r"[+-]?(\d[\d_]*|0[xX][0-9a-fA-F_]+)")


class _Mismatch(Exception):
    """Internal: a value does not fit a type (turned into ConfigError with the key)."""


# ----------------------------------------------------------------------------- type handling


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a dataclass type (string annotations evaluated)."""
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        tail = " or None" if type(None) in args else ""
        return " or ".join(names) + tail
    if origin in (tuple, list):
        if not args:
            return origin.__name__
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{_type_name(args[0])}, ...] (comma separated)"
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}] (comma separated)"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _split_sequence(text: str) -> list[str]:
    s = text.strip()
    if len(s) >= 2 and s[0] + s[-1] in ("()", "[]"):
        s = s[1:-1].strip()
    if not s:
        return []
    return [part.strip() for part in s.split(",")]


def _coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` as type ``tp``; strings are parsed, other values are checked.

    Raises ``_Mismatch`` when the value does not fit.
    """
    if tp is Any or tp is object:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)
        ):
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        for option in args:
            if isinstance(value, str) and not isinstance(option, str):
                try:
                    if _coerce(value, type(option)) == option:
                        return option
                except _Mismatch:
                    continue
            elif value == option and type(value) is type(option):
                return option
        raise _Mismatch
    if origin in (tuple, list):
        items = _split_sequence(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise _Mismatch
            out = [_coerce(v, a) for v, a in zip(items, args, strict=True)]
        else:
            elem = args[0] if args else Any
            out = [_coerce(v, elem) for v in items]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return config_from_dict(tp, value)
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value.strip(), 0) if "x" in value.lower() else int(value.strip())
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value).strip():
            return Path(value)
        raise _Mismatch
    raise ConfigError(f"config fields of type {_type_name(tp)} are not supported")


def parse_value(text_or_value: Any, tp: Any, key: str = "value") -> Any:
    """Parse/check one value against a type annotation; ConfigError names ``key`` on mismatch."""
    try:
        return _coerce(text_or_value, tp)
    except _Mismatch:
        raise ConfigError(
            f"{key}: expected {_type_name(tp)}, got {text_or_value!r}"
        ) from None


def _is_section(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _unknown_key(key: str, name: str, owner: type, valid: Iterable[str]) -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown key '{key}': {owner.__name__} has no field '{name}' "
        f"(valid: {', '.join(valid)}){hint}"
    )


# ----------------------------------------------------------------------------- overrides


def _section_type(tp: Any) -> type | None:
    """The dataclass type of a field annotation (``X`` or ``Optional[X]``), else None."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return _section_type(inner[0])
    return None


def _set_in_dict(cls: type, data: dict[str, Any], parts: list[str], value: Any, key: str) -> None:
    """Parse ``value`` by the type of field ``parts`` of ``cls`` and store it (plain) in ``data``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    name = parts[0]
    if name not in fields:
        raise _unknown_key(key, name, cls, fields)
    if not fields[name].init:
        raise ConfigError(f"{key}: field '{name}' is derived and cannot be set")
    tp = _hints(cls)[name]
    section = _section_type(tp)
    if len(parts) > 1:
        if section is None or not isinstance(data.get(name), dict):
            prefix = key.rsplit(".", len(parts) - 1)[0]
            raise ConfigError(f"unknown key '{key}': '{prefix}' is a value of type {_type_name(tp)}, not a section")
        _set_in_dict(section, data[name], parts[1:], value, key)
        return
    if section is not None:
        sub = ", ".join(f"{key}.{f.name}" for f in dataclasses.fields(section))
        raise ConfigError(f"{key} is a section; set its fields instead ({sub})")
    data[name] = _plain(parse_value(value, tp, key), key)


def _pairs(overrides: Iterable[str] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return list(overrides.items())
    if isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of KEY=VALUE strings, got the string {overrides!r}")
    out = []
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. train.lr=1e-4)")
        k, v = item.split("=", 1)
        if not k.strip():
            raise ConfigError(f"override {item!r}: empty key before '='")
        out.append((k.strip(), v))
    return out


def apply_overrides(cfg: C, overrides: Iterable[str] | Mapping[str, Any]) -> C:
    """Return a copy of dataclass ``cfg`` with dotted-key overrides applied in order.

    ``overrides`` is a list of ``"a.b=value"`` strings (values parsed by the field's type) or a
    mapping ``{"a.b": value}`` whose values are already typed (as from YAML) or strings. The
    new config is built once, after all overrides, so ``__post_init__`` checks see the final
    combination (e.g. an image size and a downsampling depth changed together).
    """
    if not _is_section(cfg):
        raise ConfigError(f"apply_overrides needs a dataclass instance, got {type(cfg).__name__}")
    pairs = _pairs(overrides)
    if not pairs:
        return cfg
    data = config_to_dict(cfg)
    for key, value in pairs:
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(f"override key {key!r}: empty name between dots")
        _set_in_dict(type(cfg), data, parts, value, key)
    return config_from_dict(type(cfg), data)


def _flatten(mapping: Mapping[str, Any], prefix: str, out: dict[str, Any], path: Path) -> None:
    for k, v in mapping.items():
        if not isinstance(k, str):
            raise ConfigError(f"{path}: key {k!r} under '{prefix or '<top>'}' is not a string")
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            _flatten(v, key, out, path)
        else:
            out[key] = v


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML file of nested mappings into ``{"dotted.key": value}`` for apply_overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read override file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    out: dict[str, Any] = {}
    _flatten(data, "", out, path)
    return out


# ----------------------------------------------------------------------------- dict round trip


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict of a dataclass config (tuples become lists, Paths strings): YAML/JSON-safe."""
    if not _is_section(cfg):
        raise ConfigError(f"config_to_dict needs a dataclass instance, got {type(cfg).__name__}")
    return {f.name: _plain(getattr(cfg, f.name), f.name) for f in dataclasses.fields(cfg)}


def _plain(value: Any, key: str) -> Any:
    if _is_section(value):
        return {f.name: _plain(getattr(value, f.name), f"{key}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"{key}: value of type {type(value).__name__} cannot be written to a config file")


def config_from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build dataclass ``cls`` from a nested dict. Strict: unknown and missing keys are errors."""
    return _from_dict(cls, data, "", None)


def config_from_saved(cls: type[C], data: Mapping[str, Any]) -> tuple[C, list[str]]:
    """Build ``cls`` from a config *saved by an earlier version* (a checkpoint's run config).

    Unknown keys are errors, as in :func:`config_from_dict`; a missing key whose field has a
    default takes that default, so that adding a field (whose default keeps the earlier behaviour,
    the rule for every new config field) does not orphan existing checkpoints. A missing key without
    a default is still an error. Returns the config and the dotted keys that were filled in.
    """
    filled: list[str] = []
    return _from_dict(cls, data, "", filled), filled


def _from_dict(cls: type[C], data: Mapping[str, Any], prefix: str, filled: list[str] | None) -> C:
    if not isinstance(data, Mapping):
        where = prefix or cls.__name__
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = {f.name for f in fields}
    for k in data:
        if k not in names:
            raise _unknown_key(f"{prefix}{k}", str(k), cls, names)
    hints = _hints(cls)
    kwargs = {}
    for f in fields:
        key = f"{prefix}{f.name}"
        if f.name not in data:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if filled is None or not has_default:
                raise ConfigError(f"missing key '{key}' ({_type_name(hints[f.name])}) for {cls.__name__}")
            filled.append(key)  # the dataclass fills its default
            continue
        tp, value = hints[f.name], data[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            kwargs[f.name] = _from_dict(tp, value, f"{key}.", filled)
        else:
            kwargs[f.name] = parse_value(value, tp, key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise  # raised by __post_init__, which names its fields
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None


# ----------------------------------------------------------------------------- files


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    raise ConfigError(f"{path}: config files end in .yaml, .yml or .json")


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a dataclass config (or an already plain mapping) atomically as YAML or JSON."""
    path = Path(path)
    fmt = _format_of(path)
    data = config_to_dict(cfg) if _is_section(cfg) else _plain(dict(cfg), path.stem)
    if fmt == "yaml":
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    else:
        text = json.dumps(data, indent=2) + "\n"
    return atomic_write_text(path, text)


def load_config(cls: type[C], path: str | Path) -> C:
    """Read a config written by :func:`save_config` back into ``cls`` (strict)."""
    path = Path(path)
    fmt = _format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not valid {fmt.upper()}: {e}") from None
    try:
        return config_from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def resolve_preset(presets: Mapping[str, C | Callable[[], C]], name: str, *, kind: str = "preset") -> C:
    """Look ``name`` up in a plain preset dict; call it if it is a function. Unknown -> ConfigError."""
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown {kind} '{name}' (choose from: {', '.join(presets)}){hint}")
    entry = presets[name]
    return entry() if callable(entry) and not _is_section(entry) else entry
