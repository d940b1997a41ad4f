"""The spellings the ``job`` and ``mask`` groups replaced; each keeps working for one release.

:func:`rewrite` turns an old command line into the new one before argparse sees it and returns the
one-line note ``main()`` prints on stderr, naming the new spelling. Remove this module (and its
call in ``cli/__init__.py``) in the release after 0.1.
"""

from __future__ import annotations

from collections.abc import Sequence

# old command word -> the words that replace it
RENAMED: dict[str, tuple[str, ...]] = {
    "jobs": ("job", "list"),
    "logs": ("job", "logs"),
    "cancel": ("job", "cancel"),
    "ingest": ("job", "ingest"),
    "mask-undo": ("mask", "undo"),
    "mask-list": ("mask", "list"),
    "mask-leaks": ("mask", "leaks"),
}
MASK_ACTIONS = frozenset({"plan", "undo", "list", "leaks"})
LAUNCH_KINDS = frozenset({"finetune", "sweep"})
HELP = frozenset({"-h", "--help"})
# Options of the top-level parser and whether each takes a value (they may come before the command).
GLOBAL_OPTIONS = {"--db": True, "-h": False, "--help": False}


def rewrite(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """(the command line in the new spelling, the note to print) or (argv, None) when it is current."""
    args = list(argv)
    at = _command_index(args)
    if at is None:
        return args, None
    word, rest = args[at], args[at + 1 :]
    if word in RENAMED:
        old, new = [word], list(RENAMED[word])
    elif word == "launch" and rest[:1] == ["resubmit"]:
        old, new, rest = ["launch", "resubmit"], ["job", "resubmit"], rest[1:]
    elif word == "launch":
        kind = rest[:1] if rest[:1] and rest[0] in LAUNCH_KINDS else []
        old, new = ["launch", *kind], ["job", "launch", *kind]
        rest = rest[len(kind) :]
    elif word == "mask" and rest and rest[0] not in MASK_ACTIONS | HELP:
        old, new = ["mask", "FILE"], ["mask", "plan", "FILE"]
        new_argv = [*args[:at], "mask", "plan", *rest]
        return new_argv, _note(old, new)
    else:
        return args, None
    return [*args[:at], *new, *rest], _note(old, new)


def _note(old: list[str], new: list[str]) -> str:
    return (
        f"ft-hallu: note: `ft-hallu {' '.join(old)}` is deprecated and goes in the next release; "
        f"use `ft-hallu {' '.join(new)}`"
    )


def _command_index(args: list[str]) -> int | None:
    """Where the command word is: after the top-level options (``--db PATH``, ``--db=PATH``)."""
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            return index
        name = arg.split("=", 1)[0]
        if name not in GLOBAL_OPTIONS:
            return None  # argparse will say what is wrong with it
        index += 2 if GLOBAL_OPTIONS[name] and "=" not in arg else 1
    return None
