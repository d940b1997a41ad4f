"""Reading the settings users write: TOML files (fine-tune, sweep, cluster) and front-end forms.

One typed loader serves all of them. :func:`load_dataclass` takes a dataclass type and a dict and
checks every value against the field's annotation: a float is finite and never a bool, an int is
never a float or a bool, a list is never a scalar (and its elements are checked), a string stays a
string, ``X | None`` allows None, a nested dataclass is a table. Ranges are declared once per field
with :func:`setting` (``min``, ``max``, ``gt``, ``lt``, ``choices``, ``min_items``, ``non_empty``,
``required``); for a list they apply to each element. Unknown keys are refused with a "did you mean".
Every message is one line naming the source, the field and the value given, e.g.
``sweep.toml: grid.temperatures[0] = nan: must be a finite number``.

The one writer is :func:`to_toml` (a config back to the TOML the loader reads), and
:func:`write_launched_config` puts a config built in a form where a launch reads it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import UserError
from engine.files import slug, write_atomic
from engine.paths import data_dir

T = TypeVar("T")

_RULE_KEYS = frozenset({"min", "max", "gt", "lt", "choices", "min_items", "non_empty", "name", "required"})


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """A dataclass field with its checks declared next to its default.

    ``min``/``max`` are inclusive bounds, ``gt``/``lt`` exclusive ones, ``choices`` the allowed
    values, ``min_items`` the shortest list, ``non_empty`` refuses "" (or whitespace), ``name`` is a
    name shown in files, tables and reports (not empty, no control or invisible character: see
    :func:`check_name`), ``required`` means a loaded config must set the field to a non-empty value.
    """
    unknown = set(rules) - _RULE_KEYS
    if unknown:
        raise TypeError(f"setting(): unknown rule(s) {', '.join(sorted(unknown))}")
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=rules)
    return dataclasses.field(default=default, metadata=rules)


# ------------------------------------------------------------------ reading files


def read_toml(path: str | Path, *, table: str | None = None) -> dict[str, Any]:
    """Parse ``path``; with ``table``, return that table if present, else the top level.

    A missing file, a folder, a file that is not UTF-8 or a syntax error is a one-line UserError
    naming the file.
    """
    file_path = Path(path)
    try:
        with open(file_path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a TOML file") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {str(exc).splitlines()[0]}") from None
    if table is None:
        return data
    section = data.get(table, data)
    if not isinstance(section, dict):
        raise UserError(f"{path}: {table} = {show(section)}: must be a table ([{table}])")
    return dict(section)


# ------------------------------------------------------------------ the typed loader


def load_dataclass(
    cls: type[T],
    values: Mapping[str, Any],
    *,
    source: str,
    labels: Mapping[str, str] | None = None,
) -> T:
    """Build ``cls`` from ``values`` after checking every key, type and range (see module doc).

    ``labels`` renames fields in messages (``{"batch_size": "--batch-size"}`` for CLI overrides).
    """
    checked = check_values(cls, values, source=source, labels=labels)
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.metadata.get("required") and _is_blank(checked.get(item.name, getattr_default(item))):
            label = (labels or {}).get(item.name, item.name)
            raise UserError(f"{source}: {label}: required, not set")
    return cls(**checked)


def check_values(
    cls: type,
    values: Mapping[str, Any],
    *,
    source: str,
    prefix: str = "",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check a partial dict of ``cls`` fields; returns the converted values (lists to tuples, ...)."""
    if not isinstance(values, Mapping):
        where = prefix.rstrip(".") or cls.__name__
        raise UserError(f"{source}: {where} = {show(values)}: must be a table")
    fields = {item.name: item for item in dataclasses.fields(cls)}
    hints = _hints(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        label = (labels or {}).get(key, f"{prefix}{key}")
        if key not in fields:
            raise UserError(f"{source}: unknown field '{label}'{_suggest(str(key), _known_names(cls, prefix), list(fields))}")
        out[key] = _check(hints[key], value, fields[key].metadata, source=source, path=label)
    return out


def validate_instance(obj: Any, *, source: str, prefix: str = "") -> None:
    """Run the same checks on an already-built dataclass (configs made in code or by a front end)."""
    values = {item.name: getattr(obj, item.name) for item in dataclasses.fields(obj)}
    check_values(type(obj), values, source=source, prefix=prefix)


def check_field(cls: type, name: str, value: Any, *, source: str, label: str | None = None) -> Any:
    """Check one value for field ``name`` of ``cls`` (a CLI option or a single form input)."""
    return check_values(cls, {name: value}, source=source, labels={name: label or name})[name]


def field_rules(cls: type, name: str) -> tuple[Any, dict[str, Any]]:
    """(type, setting() rules) of field ``name`` of ``cls``: a CLI option takes them as they are."""
    found = {item.name: item for item in dataclasses.fields(cls)}
    if name not in found:
        raise TypeError(f"{cls.__name__} has no field {name!r}")
    return _hints(cls)[name], dict(found[name].metadata)


def check_option(kind: Any, value: Any, rules: Mapping[str, Any], *, label: str, source: str = "command line") -> Any:
    """Check a command-line option's value with the same type checks and ``setting()`` rules as a
    config field: ``command line: --timeout = nan: must be a finite number``."""
    return _check(kind, value, rules, source=source, path=label)


def range_text(rules: Mapping[str, Any]) -> str:
    """The range of a setting as words (``> 0``, ``>= 0 and < 1``), '' when it has none."""
    return _range_text(rules)


# Characters a name must not hold: controls (Cc: NUL, ESC, newline...), format characters (Cf: the
# bidi overrides U+202A-U+202E and isolates U+2066-U+2069, zero-width space and joiners, the BOM,
# soft hyphen, tag characters), line and paragraph separators (Zl, Zp), unassigned code points (Cn)
# and private-use ones (Co). A name with one of them reads differently from what it is.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"})


def invisible_character(text: str, *, allow_whitespace: bool = False) -> str | None:
    """Why ``text`` cannot be a name (its first control or invisible character), or None.

    ``allow_whitespace`` lets tab, newline and carriage return through (free text, not names).
    """
    for index, char in enumerate(text):
        if allow_whitespace and char in "\t\n\r":
            continue
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            described = unicodedata.name(char, "control character")
            return f"holds an invisible or control character, U+{ord(char):04X} {described}, at position {index}"
    return None


def check_name(value: str, *, label: str, source: str) -> str:
    """A name as every front end must give it: not empty, no control or invisible character."""
    _check_rules(value, {"name": True}, source=source, path=label)
    return value


def getattr_default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return None


# ------------------------------------------------------------------ checks by type


def _check(hint: Any, value: Any, rules: Mapping[str, Any], *, source: str, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _check(options[0], value, rules, source=source, path=path)
        problems = []
        for option in options:
            try:
                return _check(option, value, rules, source=source, path=path)
            except UserError as exc:
                problems.append((option, exc))
        # A value of the right kind for one option (a whole number out of range) gets that option's message.
        same_kind = [exc for option, exc in problems if _same_kind(option, value)]
        if len(same_kind) == 1:
            raise same_kind[0]
        kinds = " or ".join(_describe(o) for o in options)
        raise UserError(f"{source}: {path} = {show(value)}: must be {kinds}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            validate_instance(value, source=source, prefix=f"{path}.")
            return value
        return hint(**check_values(hint, value, source=source, prefix=f"{path}."))
    if origin in (list, tuple):
        return _check_sequence(origin, args, value, rules, source=source, path=path)
    if origin is dict:
        return _check_mapping(args, value, rules, source=source, path=path)
    checked = _check_scalar(hint, value, source=source, path=path)
    _check_rules(checked, rules, source=source, path=path, given=value)
    return checked


def _check_sequence(origin, args, value, rules, *, source: str, path: str):
    if not isinstance(value, (list, tuple)):
        kind = _describe(list[element]) if (element := args[0] if args else None) else "a list"
        raise UserError(f"{source}: {path} = {show(value)}: must be {kind} in [ ], not a single value")
    element = args[0] if args else Any
    items = [
        _check(element, item, rules, source=source, path=f"{path}[{index}]") for index, item in enumerate(value)
    ]
    least = rules.get("min_items")
    if least is not None and len(items) < least:
        raise UserError(f"{source}: {path} = {show(value)}: must hold at least {least} value(s)")
    return tuple(items) if origin is tuple else items


def _check_mapping(args, value, rules, *, source: str, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f"{source}: {path} = {show(value)}: must be a table of name = value")
    element = args[1] if len(args) == 2 else Any
    return {
        str(key): _check(element, item, rules, source=source, path=f"{path}.{key}") for key, item in value.items()
    }


def _check_scalar(hint: Any, value: Any, *, source: str, path: str) -> Any:
    where = f"{source}: {path} = {show(value)}"
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: must be a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: must be a number")
        if not math.isfinite(value):
            raise UserError(f"{where}: must be a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: must be a string (in quotes)")
        return value
    if typing.get_origin(hint) is typing.Literal:
        if value not in typing.get_args(hint):
            raise UserError(f"{where}: must be one of {', '.join(map(show, typing.get_args(hint)))}")
        return value
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise UserError(f"{where}: must be {_describe(hint)}")


def _check_rules(value: Any, rules: Mapping[str, Any], *, source: str, path: str, given: Any = None) -> None:
    if value is None or not rules:
        return
    where = f"{source}: {path} = {show(value if given is None else given)}"
    choices = rules.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{where}: must be one of {', '.join(map(str, choices))}{hint}")
    if isinstance(value, str):
        if (rules.get("non_empty") or rules.get("name")) and not value.strip():
            raise UserError(f"{where}: must not be empty")
        if rules.get("name"):
            problem = invisible_character(value)
            if problem:
                raise UserError(f"{where}: {problem}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = rules.get("min"), rules.get("max")
    above, below = rules.get("gt"), rules.get("lt")
    broken = (
        (low is not None and value < low)
        or (high is not None and value > high)
        or (above is not None and value <= above)
        or (below is not None and value >= below)
    )
    if broken:
        raise UserError(f"{where}: must be {_range_text(rules)}")


def _range_text(rules: Mapping[str, Any]) -> str:
    parts = []
    if rules.get("gt") is not None:
        parts.append(f"> {rules['gt']}")
    if rules.get("min") is not None:
        parts.append(f">= {rules['min']}")
    if rules.get("lt") is not None:
        parts.append(f"< {rules['lt']}")
    if rules.get("max") is not None:
        parts.append(f"<= {rules['max']}")
    return " and ".join(parts)


# ------------------------------------------------------------------ helpers


def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def _known_names(cls: type, prefix: str) -> list[str]:
    """Field names a misspelt key may have meant, nested tables included (``grid.temperatures``)."""
    names = []
    hints = _hints(cls)
    for item in dataclasses.fields(cls):
        names.append(f"{prefix}{item.name}")
        if dataclasses.is_dataclass(hints[item.name]):
            names.extend(_known_names(hints[item.name], f"{prefix}{item.name}."))
    return names


def _same_kind(hint: Any, value: Any) -> bool:
    """Whether ``value`` is the kind of thing ``hint`` holds (its range or choices aside)."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return False


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return " or ".join(show(choice) for choice in typing.get_args(hint))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        inner = {bool: "booleans", int: "whole numbers", float: "numbers", str: "strings"}
        return f"a list of {inner.get(args[0], 'values')}" if args else "a list"
    if dataclasses.is_dataclass(hint):
        return "a table"
    return getattr(hint, "__name__", str(hint))


def _suggest(word: str, known: Any, listed: list[str] | None = None) -> str:
    known = [str(k) for k in known]
    # Compare with the last part too, so 'temperature' finds 'grid.temperatures'.
    by_leaf = {k.rsplit(".", 1)[-1]: k for k in reversed(known)}
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    close = close or [by_leaf[m] for m in difflib.get_close_matches(word, list(by_leaf), n=1, cutoff=0.75)]
    if close:
        return f"; did you mean '{close[0]}'?"
    return f" (known: {', '.join(sorted(listed or known))})"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _escaped(char: str) -> str:
    """A character as TOML writes it inside quotes; controls and invisible ones as \\uXXXX."""
    if char in ('"', "\\"):
        return "\\" + char
    if char == "\n":
        return "\\n"
    if unicodedata.category(char) in _HIDDEN_CATEGORIES:
        return f"\\u{ord(char):04X}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}"
    return char


def show(value: Any, limit: int = 60) -> str:
    """A value as the user typed it in TOML: nan, true, "hot", [1.0, 2.0]."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    elif isinstance(value, str):
        text = '"' + "".join(_escaped(char) for char in value) + '"'
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k} = {show(v, limit)}" for k, v in value.items()) + "}"
    elif value is None:
        text = "(nothing)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ writing files


def to_toml(table: str, config: Any) -> str:
    """``config`` (a dataclass) as the TOML table ``[table]`` that :func:`load_dataclass` reads back
    to an equal config: plain fields first, then each nested dataclass or non-empty dict field as
    ``[table.field]``. A field set to None is left out, so the loader's default (None) applies."""
    lines = [f"[{table}]"]
    nested: list[str] = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            nested += ["", to_toml(f"{table}.{item.name}", value).rstrip("\n")]
        elif isinstance(value, Mapping):
            if value:
                entries = [f"{_toml_key(str(key))} = {toml_value(entry)}" for key, entry in value.items()]
                nested += ["", f"[{table}.{item.name}]", *entries]
        else:
            lines.append(f"{item.name} = {toml_value(value)}")
    return "\n".join(lines + nested) + "\n"


def toml_value(value: Any) -> str:
    """One TOML value: a bool, a number, a string, a path (as a string) or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # TOML reads Python's int and float spellings (inf and nan included)
    if isinstance(value, (str, Path)):
        return _toml_string(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"to_toml: cannot write a {type(value).__name__} ({value!r})")


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def launched_config_path(kind: str, name: str) -> Path:
    """Where a launch from a form writes its config: ``<data>/configs/<slug>.toml`` for a
    fine-tune, ``<data>/configs/sweep-<slug>.toml`` for a sweep (so the two never share a file)."""
    if kind == "sweep":
        return data_dir() / "configs" / f"sweep-{slug(name, fallback='sweep')}.toml"
    return data_dir() / "configs" / f"{slug(name, fallback=kind)}.toml"


def write_launched_config(kind: str, config: Any) -> Path:
    """Write ``config`` (whose ``name`` names the file) as ``[kind]`` TOML where a launch reads it."""
    path = launched_config_path(kind, config.name)
    write_atomic(path, to_toml(kind, config))
    return path
