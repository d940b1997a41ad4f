"""Helpers every verb module shares; kept apart from cli/__init__.py so verbs can import it at the top."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from engine.configfile import check_option, field_rules, range_text
from engine.paths import default_db_path


def db_path_from(args: argparse.Namespace) -> str:
    """The store the command works on: ``--db`` or the default in the data folder."""
    return str(args.db or default_db_path())


class Checked(argparse.Action):
    """An option checked like a config field: its type and ``setting()`` range, one line when wrong.

    ``field=(SweepConfig, "samples_per_cell")`` takes the range declared on that field (one place
    for both the TOML key and its flag); ``rules`` declares (or tightens) it for a flag of its own.
    ``kind`` is the value's type (int, float, str). The range is added to the help text. A value
    out of range raises :class:`engine.errors.UserError` while the command line is read, so nothing
    has been opened or written yet: ``command line: --timeout = nan: must be a finite number``.
    """

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        *,
        kind: Any = None,
        field: tuple[type, str] | None = None,
        rules: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        declared: dict[str, Any] = {}
        if field is not None:
            kind_of_field, declared = field_rules(*field)
            kind = kind or _scalar(kind_of_field)
        self.kind = kind or kwargs.get("type") or str
        self.rules = {key: value for key, value in {**declared, **(rules or {})}.items() if key != "required"}
        kwargs.setdefault("type", self.kind if self.kind in (int, float) else None)
        described = range_text(self.rules) or ("a name: no control or invisible character" if self.rules.get("name") else "")
        if described and kwargs.get("help") not in (None, argparse.SUPPRESS):
            kwargs["help"] = f"{kwargs['help']} [{described}]"
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        label = option_string or self.dest
        setattr(namespace, self.dest, check_option(self.kind, values, self.rules, label=label))


class CheckedAppend(Checked):
    """:class:`Checked` for an option given several times (``--alias A --alias B``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", [])
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        label = option_string or self.dest
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(check_option(self.kind, values, self.rules, label=label))
        setattr(namespace, self.dest, items)


def _scalar(hint: Any) -> Any:
    """``int | None`` -> int: the option's own type."""
    import typing

    options = [a for a in typing.get_args(hint) if a is not type(None)]
    return options[0] if len(options) == 1 else hint


# Ranges of flags that are not fields of a config.
ID = {"min": 1}  # store ids: sweeps, jobs, maskings
NAME = {"name": True}  # a name: not empty, no control or invisible character
