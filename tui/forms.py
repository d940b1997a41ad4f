"""Forms built from the settings dataclasses (FinetuneConfig, SweepConfig and its Grid, ...).

One row per field, labelled with its TOML key; the help shown for the focused row is the field's
own (``engine.configfile.describe_setting``), so a setting added to a config appears in its form,
with its help, without touching a screen. A screen names its basic fields; the rest are folded
away. Text is turned into values by the field's annotation here; ranges, choices and unknown
fields are then checked by the same loader a TOML file goes through (``load_dataclass``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.configfile import describe_setting, getattr_default
from engine.errors import UserError


@dataclass(frozen=True)
class FormField:
    """One setting as a form row: ``path`` is its key in the config (``grid.top_ps`` when nested)."""

    path: str
    label: str
    input_id: str
    hint: Any
    default: Any
    help: str


def input_id_for(prefix: str, path: str) -> str:
    return f"{prefix}-{path.replace('.', '-')}"


def form_fields(cls: type, id_prefix: str, *, skip: Iterable[str] = (), _path: str = "") -> list[FormField]:
    """Every field of ``cls`` (nested dataclasses flattened), in declaration order, minus ``skip``."""
    hints = typing.get_type_hints(cls)
    skipped = set(skip)
    found: list[FormField] = []
    for item in dataclasses.fields(cls):
        path = f"{_path}{item.name}"
        if path in skipped:
            continue
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            found.extend(form_fields(hint, id_prefix, skip=skipped, _path=f"{path}."))
            continue
        found.append(
            FormField(
                path=path,
                label=item.name,
                input_id=input_id_for(id_prefix, path),
                hint=hint,
                default=getattr_default(item),
                help=describe_setting(cls, item.name),
            )
        )
    return found


def split_basic(fields: Sequence[FormField], basic: Sequence[str]) -> tuple[list[FormField], list[FormField]]:
    """(the basic fields in the order ``basic`` names them, every other field in declaration order)."""
    by_path = {field.path: field for field in fields}
    first = [by_path[path] for path in basic if path in by_path]
    return first, [field for field in fields if field.path not in basic]


def format_value(value: Any) -> str:
    """A value as the form shows it (the inverse of ``parse_value``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{key}={val}" for key, val in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_value(field: FormField, text: str, *, where: str) -> Any:
    """The typed value of ``text`` for ``field``. Empty is "" for a text field (so a required one
    is refused by name), None where the field allows it, else the field's default.

    A value that is not of the field's type raises a UserError naming the form and the field.
    """
    text = text.strip()
    if not text:
        if field.hint is str:
            return ""
        if type(None) in typing.get_args(field.hint):
            return None
        return field.default
    try:
        return _parse(field.hint, text)
    except ValueError as exc:
        raise UserError(f"{where}: {field.label} = {text!r}: {exc}") from None


def _parse(hint: Any, text: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in args if option is not type(None)]
        # A word the field names (save_checkpoints = "epoch", checkpoints = "all") is taken as is.
        words = [
            word
            for option in options
            if typing.get_origin(option) is typing.Literal
            for word in typing.get_args(option)
        ]
        if text in words:
            return text
        options = [option for option in options if typing.get_origin(option) is not typing.Literal]
        if not options:
            return text  # not one of the words: the loader names them
        lists = [option for option in options if typing.get_origin(option) in (list, tuple)]
        if lists and str in options:  # e.g. target_modules: one name, or several separated by commas
            parts = _items(text)
            return parts[0] if len(parts) == 1 else _parse(lists[0], text)
        scalars = [option for option in options if option not in lists]
        many = lists and (not scalars or len(_items(text)) > 1)  # save_checkpoints: every N, or steps
        try:
            return _parse(lists[0] if many else scalars[0], text)
        except ValueError as exc:
            if not words:
                raise
            named = " or ".join(repr(word) for word in words if word)
            raise ValueError(f"must be {named}, or {str(exc).removeprefix('must be ')}") from None
    if origin in (list, tuple):
        element = args[0] if args else str
        return [_parse(element, part) for part in _items(text)]
    if origin is dict:
        pairs = {}
        for part in _items(text):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError("expected label=value pairs separated by commas")
            pairs[key.strip()] = value.strip()
        return pairs
    if hint is bool:
        lowered = text.lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ValueError("must be true or false")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    return text


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def collect(fields: Iterable[FormField], read: Callable[[str], str], *, where: str) -> dict[str, Any]:
    """The form's values as the nested dict a TOML file holds (``{"grid": {"top_ps": [...]}}``)."""
    values: dict[str, Any] = {}
    for field in fields:
        *tables, key = field.path.split(".")
        target = values
        for table in tables:
            target = target.setdefault(table, {})
        target[key] = parse_value(field, read(field.input_id), where=where)
    return values


def flat_values(config: Any, fields: Iterable[FormField]) -> dict[str, str]:
    """input id -> text for every field of ``config`` (to fill a form from a loaded config)."""
    shown = {}
    for field in fields:
        value: Any = config
        for part in field.path.split("."):
            value = getattr(value, part)
        shown[field.input_id] = format_value(value)
    return shown
