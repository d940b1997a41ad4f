"""Model, dataset and user text made safe for every surface that renders markup: HTML, Markdown,
LaTeX, CSV.

One place for it: the report's renderers, every ``gr.Markdown`` / ``gr.HTML`` of the Gradio app and
the labelling views call these and nothing else on text they did not write. (Rich / Textual markup
lives in the TUI, which owns Rich: ``tui.screens.base.plain``.) An answer such as
``<script>alert(1)</script>`` or ``**[click](javascript:...)**`` is shown as those characters, never
run, linked or formatted.
"""

from __future__ import annotations

import html
import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~])")
# ...and at the start of a line, before a space: list items ("- ", "+ ", "1. ", "1) ") and the
# underlines of headings ("=", "-" alone); a number such as "0.25" or "-3" is left as it is.
_LINE_START = re.compile(r"^(\d*)([.)])(?=\s)|^()([+\-=])(?=\s|$)", re.MULTILINE)
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    # what the report itself writes beyond Latin-1, so pdflatex needs no Unicode set-up for it
    "−": r"$-$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "→": r"$\rightarrow$",
    "×": r"$\times$",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def html_text(text: object) -> str:
    """Text for HTML element content or a quoted attribute (quotes escaped too)."""
    return html.escape(_CONTROL.sub("", str(text)), quote=True)


def markdown_text(text: object, *, inline: bool = True) -> str:
    """Text for Markdown (a table cell when ``inline``): raw HTML neutralised as entities (&, <, >),
    the punctuation that starts emphasis, code, links, headings, tables or strike-through
    backslash-escaped, and line breaks folded to spaces (a table row is one line)."""
    value = _CONTROL.sub("", str(text))
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _MARKDOWN_SPECIAL.sub(r"\\\1", value)
    if inline:
        value = " ".join(value.split())
    return _LINE_START.sub(_escape_line_start, value)


def _escape_line_start(match: re.Match[str]) -> str:
    digits, mark = (match.group(1), match.group(2)) if match.group(2) else (match.group(3), match.group(4))
    return f"{digits}\\{mark}"


def latex_text(text: object) -> str:
    """Text for a LaTeX table cell: the ten special characters (and < >) spelled as commands."""
    value = " ".join(_CONTROL.sub("", str(text)).split())
    return _LATEX_RE.sub(lambda match: _LATEX_SPECIAL[match.group(0)], value)


def csv_text(text: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula ('=', '+', '-', '@' first)."""
    value = _CONTROL.sub("", str(text))
    if value[:1] in ("=", "+", "@") or (value[:1] == "-" and not _looks_numeric(value)):
        return "'" + value
    return value


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
