"""The quiet console: library warnings, bars and log notices only with --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A child that does what libraries do on their own: a FutureWarning, a tqdm bar, a logger notice.
CHATTY = """
import sys, warnings, logging
from engine import console
console.configure(verbose=sys.argv[1] == "verbose")
logging.basicConfig()
import tqdm
for _ in tqdm.tqdm(range(3), desc="Loading weights"):
    pass
warnings.warn("`x` is deprecated", FutureWarning)
logging.getLogger("kernels._internals.hf_hub").warning("Skipping publisher trust check")
print("ft-hallu: own line", file=sys.stderr)
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_library_chatter_is_shown_only_when_verbose(mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"TQDM_DISABLE", "PYTHONWARNINGS", "FT_HALLU_VERBOSE"}}
    done = subprocess.run(
        [sys.executable, "-c", CHATTY, mode], capture_output=True, text=True, env=env, check=True
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if mode == "quiet":
        assert lines == ["ft-hallu: own line"]
    else:
        text = done.stderr
        assert "Loading weights" in text and "FutureWarning" in text and "publisher trust" in text


def test_quiet_settings_reach_child_processes() -> None:
    parent = (
        "import subprocess, sys\n"
        "from engine import console\n"
        "console.configure(verbose=False)\n"
        "code = 'import warnings; warnings.warn(\"old\", FutureWarning); print(\"ok\")'\n"
        "done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)\n"
        "print(repr(done.stdout), repr(done.stderr))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"TQDM_DISABLE", "PYTHONWARNINGS", "FT_HALLU_VERBOSE"}}
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "'ok\\n' ''"


def test_verbose_flag_is_a_global_option() -> None:
    from cli import build_parser

    args = build_parser().parse_args(["--verbose", "dataset", "check", "x.jsonl"])
    assert args.verbose is True


def test_every_help_text_reads_as_written() -> None:
    """Every command's --help, nested groups included, as argparse prints it: no doubled percent
    sign (a description is printed as written, only argument help is %-formatted) and no
    unexpanded %(default)s."""
    import argparse

    from cli import build_parser

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in dict.fromkeys(action.choices.values()):
                    found += parsers(child)
        return found

    every = parsers(build_parser())
    assert len(every) > 30
    for parser in every:
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, parser.prog
