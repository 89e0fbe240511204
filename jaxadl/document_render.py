"""The reproduced report's content as a list of blocks, and its two renderings: markdown (figures as PNG files
in a folder beside it, place_figures) and one self-contained HTML file (figures as base64 data URIs, inline CSS, no external URL).

Both renderings walk the same blocks, so they hold the same headings, text, tables and figures. Text may hold
`code` spans, the only inline markup; everything else is escaped.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image


@dataclasses.dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclasses.dataclass(frozen=True)
class Paragraph:
    text: str


@dataclasses.dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Code:
    text: str


@dataclasses.dataclass(frozen=True)
class Table:
    """A table: a caption (numbered by its first word, e.g. "Table 1.4."), column names and rows of text."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclasses.dataclass(frozen=True)
class Figure:
    """A PNG (`source`, drawn elsewhere) shown under the file name `name` with its caption."""

    source: Path
    name: str
    caption: str


Block = Heading | Paragraph | Bullets | Code | Table | Figure


def table(caption: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A Table with every cell as text."""
    return Table(caption, tuple(columns), tuple(tuple(str(c) for c in row) for row in rows))


# markdown ------------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def place_figures(blocks: Sequence[Block], files: Path) -> list[Block]:
    """The blocks with each figure's PNG written into `files` as <name>, re-encoded with a 256-colour palette
    (plots lose nothing visible, the files shrink about 2×); both renderings then use these copies."""
    files.mkdir(parents=True, exist_ok=True)
    out: list[Block] = []
    for block in blocks:
        if isinstance(block, Figure):
            with Image.open(block.source) as image:
                rgb = image.convert("RGB")
            palette = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            palette.save(files / block.name, optimize=True)
            block = dataclasses.replace(block, source=files / block.name)
        out.append(block)
    return out


def markdown(blocks: Sequence[Block], *, files_url: str = "report_files") -> str:
    """The blocks as markdown, each figure linked as files_url/<name> (see place_figures)."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Code):
            out.append(f"```\n{block.text}\n```")
        elif isinstance(block, Table):
            lines = [f"*{block.caption}*", "", "| " + " | ".join(_md_cell(c) for c in block.columns) + " |"]
            lines.append("|" + "---|" * len(block.columns))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            alt = block.caption.split(". ")[0].replace("[", "(").replace("]", ")")
            out.append(f"![{alt}]({files_url}/{block.name})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


# HTML ----------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1320px; margin: 2em auto;
       padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; background: #f4f4f4; }
pre { padding: .6em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.table-wrap { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: .8em; }
caption { caption-side: top; text-align: left; font-style: italic; padding: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .45em; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { font-size: .9em; color: #444; font-style: italic; }
"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans as <code>."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def to_html(blocks: Sequence[Block], title: str) -> str:
    """The blocks as one HTML page with everything inside it."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Code):
            out.append(f"<pre>{html.escape(block.text)}</pre>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(c)}</th>" for c in block.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            out.append(
                f'<div class="table-wrap"><table><caption>{_inline(block.caption)}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
            )
        elif isinstance(block, Figure):
            out.append(
                f'<figure><img src="{_data_uri(block.source)}" alt="{html.escape(block.name)}">'
                f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
