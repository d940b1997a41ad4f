"""Rendering a report: one HTML page (figures inlined), Markdown, and each table as CSV and LaTeX.

Every text a model, a dataset or a user wrote goes through engine/escape.py in each format.
"""

from __future__ import annotations

import base64
import csv
import io

from engine.escape import csv_text, html_text, latex_text, markdown_text
from engine.report.blocks import Block, Paragraph, Report, Table

# ------------------------------------------------------------------ rendering: HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1180px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.3em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
p.headline{font-size:1.12em;font-weight:600;background:#f4f7fb;border-left:4px solid #2166ac;padding:.5em .8em}
table{border-collapse:collapse;margin:.4em 0 1.2em;font-size:13px}
caption{caption-side:top;text-align:left;font-size:13px;color:#444;padding:.2em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top;font-variant-numeric:tabular-nums}
th{background:#f0f0f0;font-weight:600} th.group{text-align:center} td.text,th.text{text-align:left;max-width:460px;white-space:normal}
td.first{text-align:left;white-space:nowrap}
figure{margin:.6em 0 1.4em} figure img{max-width:100%} figcaption{font-size:13px;color:#444}
p.more{font-size:12px;color:#666}
"""


def _header_html(table: Table) -> str:
    """One header row, or two when headers are grouped ('hallucination · base' under 'hallucination')."""

    def css(i: int) -> str:
        return "text" if i in table.text_columns or i == 0 else ""

    if not table.grouped_headers:
        return (
            "<tr>"
            + "".join(f"<th class='{css(i)}'>{html_text(h)}</th>" for i, h in enumerate(table.headers))
            + "</tr>"
        )
    split = [h.split(" · ", 1) if " · " in h else [h] for h in table.headers]
    top, bottom = [], []
    i = 0
    while i < len(split):
        parts = split[i]
        if len(parts) == 1:
            top.append(f"<th rowspan='2' class='{css(i)}'>{html_text(parts[0])}</th>")
            i += 1
            continue
        span = 1
        while i + span < len(split) and len(split[i + span]) == 2 and split[i + span][0] == parts[0]:
            span += 1
        top.append(f"<th colspan='{span}' class='group'>{html_text(parts[0])}</th>")
        bottom.extend(f"<th>{html_text(split[j][1])}</th>" for j in range(i, i + span))
        i += span
    return f"<tr>{''.join(top)}</tr><tr>{''.join(bottom)}</tr>"


def _files_line(table: Table) -> str:
    """Where a table shown with no rows is: its CSV and LaTeX files."""
    return f"{len(table.rows)} rows: tables/{table.name}.csv and tables/{table.name}.tex"


def _table_html(table: Table) -> str:
    if table.shown == 0:
        caption = f"{html_text(table.caption)}: " if table.caption else ""
        return f"<p class='more'>{caption}{html_text(_files_line(table))}</p>"
    head = _header_html(table)
    shown = table.rows if table.shown is None else table.rows[: table.shown]
    body = []
    for row in shown:
        cells = []
        for i, value in enumerate(row):
            css = "text" if i in table.text_columns else ("first" if i == 0 else "")
            cells.append(f"<td class='{css}'>{html_text(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{html_text(table.caption)}</caption>" if table.caption else ""
    more = ""
    if len(shown) < len(table.rows):
        more = f"<p class='more'>{len(shown)} of {len(table.rows)} rows shown; all in tables/{html_text(table.name)}.csv</p>"
    return f"<table>{caption}{head}{''.join(body)}</table>{more}"


def _block_html(block: Block) -> str:
    if isinstance(block, Paragraph):
        css = " class='headline'" if block.strong else ""
        return f"<p{css}>{html_text(block.text)}</p>"
    if isinstance(block, Table):
        return _table_html(block)
    if not block.inline:
        return (
            f"<p class='more'>Heatmap: {html_text(block.title)} — "
            f"<a href='figures/{html_text(block.name)}.png'>PNG</a>, "
            f"<a href='figures/{html_text(block.name)}.svg'>SVG</a> (not inlined, to keep this page small)</p>"
        )
    encoded = base64.b64encode(block.png).decode("ascii")
    return (
        f"<figure><img alt='{html_text(block.title)}' src='data:image/png;base64,{encoded}'>"
        f"<figcaption>{html_text(block.caption)} (also figures/{html_text(block.name)}.svg)</figcaption></figure>"
    )


def render_html(report: Report) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html_text(report.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    anchors = [f"s{i}" for i in range(len(report.sections))]
    for index, section in enumerate(report.sections):
        tag = f"h{min(section.level, 6)}"
        parts.append(f"<{tag} id='{anchors[index]}'>{html_text(section.title)}</{tag}>")
        parts.extend(_block_html(block) for block in section.blocks)
        if index == 0 and len(report.sections) > 1:  # after the headline: where everything else is
            links = " · ".join(
                f"<a href='#{anchor}'>{html_text(s.title)}</a>"
                for anchor, s in zip(anchors[1:], report.sections[1:], strict=True)
            )
            parts.append(f"<p class='more'>Contents: {links}</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ------------------------------------------------------------------ rendering: Markdown


def _table_md(table: Table) -> str:
    if table.shown == 0:
        caption = f"{table.caption}: " if table.caption else ""
        return markdown_text(caption + _files_line(table))
    shown = table.rows if table.shown is None else table.rows[: table.shown]
    lines = []
    if table.caption:
        lines += [f"*{markdown_text(table.caption)}*", ""]
    lines.append("| " + " | ".join(markdown_text(h) or " " for h in table.headers) + " |")
    lines.append(
        "|"
        + "".join("---|" if i in table.text_columns or i == 0 else "--:|" for i in range(len(table.headers)))
    )
    lines.extend("| " + " | ".join(markdown_text(v) for v in row) + " |" for row in shown)
    if len(shown) < len(table.rows):
        lines += [
            "",
            f"{len(shown)} of {len(table.rows)} rows shown; all in tables/{markdown_text(table.name)}.csv",
        ]
    return "\n".join(lines)


def _block_md(block: Block) -> str:
    if isinstance(block, Paragraph):
        text = markdown_text(block.text)
        return f"**{text}**" if block.strong else text
    if isinstance(block, Table):
        return _table_md(block)
    return (
        f"![{markdown_text(block.title)}](figures/{block.name}.png)\n\n"
        f"*{markdown_text(block.caption)}* ([SVG](figures/{block.name}.svg))"
    )


def render_markdown(report: Report) -> str:
    lines = [f"# {markdown_text(report.title)}", ""]
    for section in report.sections:
        if section.level > 1:
            lines += [f"{'#' * min(section.level, 6)} {markdown_text(section.title)}", ""]
        else:
            lines += [f"## {markdown_text(section.title)}", ""]
        for block in section.blocks:
            lines += [_block_md(block), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ tables as files


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_text(h) for h in table.headers])
    writer.writerows([[csv_text(v) for v in row] for row in table.rows])
    return out.getvalue()


def table_latex(table: Table) -> str:
    """A booktabs tabular (answers in p{} columns), every cell escaped."""
    spec = "".join(
        "p{6cm}" if i in table.text_columns else ("l" if i == 0 else "r") for i in range(len(table.headers))
    )
    lines = [
        "% written by ft-hallu report; needs \\usepackage{booktabs}. Answers may hold any Unicode",
        "% character: compile with LuaLaTeX or XeLaTeX.",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_text(h) for h in table.headers) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(latex_text(v) for v in row) + " \\\\" for row in table.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.caption:
        lines.insert(2, f"% {latex_text(table.caption)}")
    return "\n".join(lines) + "\n"
