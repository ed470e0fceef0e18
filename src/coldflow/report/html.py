"""Static HTML pages in one house style: page frame, tables, figures, notes.

Pages reference their figures by relative path: they need no server, scripts or
network; move a page together with its ``figures/`` folder. Every table of a page
scrolls sideways in its own box (:func:`page` wraps it), so a wide table never cuts
off or widens the page.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import urllib.parse
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coldflow.io import format_duration
from coldflow.report.style import save_figure

__all__ = [
    "Comparison",
    "Figure",
    "evaluation_html",
    "figures_html",
    "format_duration",
    "format_value",
    "markdown_table",
    "markdown_to_html",
    "notes_html",
    "page",
    "save",
    "thumbnails_markdown",
]


@dataclass
class Figure:
    """A saved figure and its caption."""

    path: Path
    caption: str


@dataclass
class Comparison:
    """What a task adds to a comparison page of several of its runs."""

    tables: list[tuple[str, str]] = field(default_factory=list)  # (title, markdown table)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def save(
    out: list[Figure], notes: list[str], path: Path, caption: str, make: Callable[[], Any]
) -> None:
    """Make and save one figure; a figure whose data are malformed becomes a note."""
    try:
        fig = make()
    except ValueError as e:
        notes.append(f"{path.name} skipped: {e}")
        warnings.warn(f"{path}: skipped: {e}", stacklevel=2)
        return
    out.append(Figure(save_figure(fig, path), caption))


def format_value(value: Any) -> str:
    """Four significant digits for floats; other values as they print."""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 62rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.4;
       overflow-wrap: break-word; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.sub { color: #666; margin-top: 0; }
.wide { max-width: 100%; overflow-x: auto; margin: 0.5rem 0; }
table { border-collapse: collapse; margin: 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.8rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; }
.thumbs { display: flex; flex-wrap: wrap; gap: 1rem; margin: 0.8rem 0; }
figure.thumb { margin: 0; max-width: 20rem; }
figure.thumb img { display: block; width: auto; height: auto; max-width: 100%;
                   max-height: 15rem; border: 1px solid #ddd; }
figure.thumb figcaption { font-size: 0.8rem; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.note { color: #8a5300; }
""".strip()


_TABLE_START = re.compile(r"<table\b")


def _wrap_tables(text: str) -> str:
    """Each ``<table>`` inside a ``<div class="wide">`` that scrolls sideways when the
    table is wider than the page (tables of these pages are never nested)."""
    text = _TABLE_START.sub('<div class="wide"><table', text)
    return text.replace("</table>", "</table></div>")


def page(title: str, body: list[str]) -> str:
    """A complete HTML document with the house style; every table in ``body`` scrolls
    sideways in its own box instead of widening the page."""
    head = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">']
    head += ['<meta name="viewport" content="width=device-width, initial-scale=1">']
    head += [f"<title>{html.escape(title)}</title>", f"<style>\n{_CSS}\n</style>", "</head>"]
    return "\n".join([*head, "<body>", _wrap_tables("\n".join(body)), "</body>", "</html>", ""])


def figures_html(figures: Sequence[Figure], base: Path) -> list[str]:
    """``<figure>`` elements with paths relative to ``base`` (the page's folder)."""
    out = []
    for f in figures:
        src = html.escape(Path(os.path.relpath(f.path, base)).as_posix(), quote=True)
        alt = html.escape(f.path.stem, quote=True)
        out += [
            "<figure>",
            f'<img src="{src}" alt="{alt}">',
            f"<figcaption>{html.escape(f.caption)}</figcaption>",
            "</figure>",
        ]
    return out


def notes_html(notes: Sequence[str]) -> list[str]:
    """Notes (skipped figures, missing files) as a highlighted list."""
    if not notes:
        return []
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return [f'<ul class="note">{items}</ul>']


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (floats with four significant digits)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_value(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _url(path: Path, base: Path) -> str:
    """``path`` relative to ``base``, percent-encoded (a markdown link takes no spaces)."""
    return urllib.parse.quote(Path(os.path.relpath(path, base)).as_posix(), safe="/")


def thumbnails_markdown(items: Sequence[tuple[Path, str, Path]], base: Path) -> str:
    """One markdown line of linked images, ``[![caption](figure)](link)`` each, which
    :func:`markdown_to_html` renders as a row of thumbnails.

    Parameters
    ----------
    items
        ``(figure, caption, link)``: a saved figure, a short caption, and the page (or
        file) a click on the thumbnail opens.
    base
        The folder of the page the line goes into: paths are written relative to it,
        so the page keeps working when its folder is moved.

    Returns
    -------
    str
        The line; ``""`` when none of the figure files exists (a missing file is left
        out, never shown as a broken image).
    """
    cells = []
    for figure, caption, link in items:
        if not Path(figure).is_file():
            continue
        text = " ".join(re.sub(r"[\[\]]", "", caption).split())
        cells.append(f"[![{text}]({_url(figure, base)})]({_url(link, base)})")
    return " ".join(cells)


_INLINE = [  # (pattern on escaped text, replacement): images before links
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img src="\2" alt="\1">'),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
]
_FIGURE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
_THUMB = r"\[!\[([^\]]*)\]\(([^)\s]+)\)\]\(([^)\s]+)\)"
_THUMBS = re.compile(rf"^{_THUMB}(?:\s+{_THUMB})*$")


def _thumbnails(line: str) -> list[str]:
    """A line of linked images (:func:`thumbnails_markdown`) as a row of thumbnails."""
    out = ['<div class="thumbs">']
    for caption, src, href in re.findall(_THUMB, line):
        caption = html.escape(caption)
        out += [
            '<figure class="thumb">',
            f'<a href="{html.escape(href, quote=True)}">'
            f'<img src="{html.escape(src, quote=True)}" alt="{caption}"></a>',
            f"<figcaption>{caption}</figcaption>",
            "</figure>",
        ]
    return [*out, "</div>"]


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


_NUMBER = re.compile(r"[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?( ?%)?( / .*)?", re.IGNORECASE)


def _cell(text: str) -> str:
    """A table cell; numbers (``0.25``, ``1e-05``, ``-1.6 %``, ``0.63 / 0.23``) align right."""
    cls = " class=num" if _NUMBER.fullmatch(text) else ""
    return f"<td{cls}>{_inline(text)}</td>"


def markdown_to_html(text: str) -> list[str]:
    """The markdown the pages are written in, as HTML: ``#``-headings, paragraphs (one
    per line), ``-`` lists, :func:`markdown_table` tables, a line that is only an image
    (a figure, its alt text the caption), a line of linked images (thumbnails, from
    :func:`thumbnails_markdown`), and inline links, images, bold and code.

    Pages are written once, in markdown (``results.md``), and rendered by this function,
    so that the markdown and the HTML page cannot say different things.
    """
    out: list[str] = []
    table: list[list[str]] = []
    items: list[str] = []

    def flush() -> None:
        if table:
            head, *body = table
            rows = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
            rows += ["<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in body]
            out.append("<table>" + "".join(rows) + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|") and s.endswith("|"):
            cells = [c.strip() for c in s[1:-1].split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                table.append(cells)
            continue
        if s.startswith("- "):
            items.append(s[2:])
            continue
        flush()
        level = len(s) - len(s.lstrip("#"))
        figure = _FIGURE.match(s)
        if 1 <= level <= 4 and s[level : level + 1] == " ":
            out.append(f"<h{level}>{_inline(s[level + 1 :])}</h{level}>")
        elif _THUMBS.match(s):
            out += _thumbnails(s)
        elif figure:
            src = html.escape(figure.group(2), quote=True)
            caption = html.escape(figure.group(1))
            out += ["<figure>", f'<img src="{src}" alt="{caption}">']
            out += [f"<figcaption>{caption}</figcaption>", "</figure>"]
        elif s:
            out.append(f"<p>{_inline(s)}</p>")
    flush()
    return out


def evaluation_html(path: Path) -> list[str]:
    """``evaluation.json`` (written by ``coldflow evaluate``) as tables."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return [f'<p class="note">{html.escape(str(path))} is unreadable.</p>']

    def cell(v: Any) -> str:
        return f"<td class=num>{html.escape(format_value(v))}</td>"

    out = ["<h2>Evaluation</h2>"]
    if isinstance(data.get("verdict"), str):
        out.append(f"<p><strong>{html.escape(data['verdict'])}</strong></p>")
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list) and k != "verdict"}
    for name, section in data.items():
        if not isinstance(section, dict) or name in ("per_step", "per_simulation"):
            continue
        if section and all(isinstance(v, dict) for v in section.values()):  # rows x columns
            cols = list(dict.fromkeys(c for row in section.values() for c in row))
            if any(isinstance(row.get(c), dict | list) for row in section.values() for c in cols):
                continue
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
            rows = "".join(
                f"<tr><th>{html.escape(r)}</th>{''.join(cell(row.get(c, '')) for c in cols)}</tr>"
                for r, row in section.items()
            )
            out.append(f"<h3>{html.escape(name)}</h3><table><tr><th></th>{head}</tr>{rows}</table>")
        else:
            scalars |= {
                f"{name} {k}": v for k, v in section.items() if not isinstance(v, dict | list)
            }
    rows = "".join(f"<tr><th>{html.escape(k)}</th>{cell(v)}</tr>" for k, v in scalars.items())
    out.append(f"<table>{rows}</table>")
    return out
