"""Escaping text from models, datasets and users for the surfaces that render markup.

One helper per surface kind, used everywhere that kind is written:

* HTML (the report's .html, Gradio's ``gr.HTML`` views): :func:`html_text` (``html.escape``);
* Markdown (the report's .md, every ``gr.Markdown``): :func:`markdown_text`;
* Rich / Textual markup (the TUI) lives in the TUI (``tui.screens.base.plain``), which owns Rich.

An answer such as ``<script>alert(1)</script>`` or ``**[click](javascript:...)**`` is shown as
those characters, never run, linked or formatted.
"""

from __future__ import annotations

import html
import re

# Characters that start Markdown syntax anywhere in a line: emphasis, code, links and images, table
# cells, strike-through (raw HTML and autolinks need <, > or &, which become entities).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# ...and at the start of a line: headings, lists, block quotes, rules, numbered lists.
_LINE_START = re.compile(r"^(\d*)([#+\-=.)])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def html_text(text: object) -> str:
    """``text`` for HTML content or a quoted attribute: every <, >, &, ' and " escaped."""
    return html.escape(str(text), quote=True)


def markdown_text(text: object) -> str:
    """``text`` shown literally by a Markdown renderer, on one line (fits a table cell or a heading).

    HTML's <, > and & become entities (so no tag is ever formed) and every character that starts
    Markdown syntax gets a backslash; newlines become spaces.
    """
    flat = " ".join(str(text).split())
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", "".join(_ENTITIES.get(char, char) for char in flat))
    return _LINE_START.sub(lambda match: f"{match.group(1)}\\{match.group(2)}", escaped, count=1)
