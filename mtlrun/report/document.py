"""A report as a list of blocks, rendered three ways: rich on the terminal, Markdown and a
self-contained HTML page (inline CSS, images by relative path: it opens from any folder, no
server needed)."""

import html
from dataclasses import dataclass, field

from rich.table import Table as RichTable


@dataclass
class Heading:
    text: str


@dataclass
class Text:
    text: str


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned columns


@dataclass
class Images:
    caption: str
    paths: list[str]  # relative to the report's folder, URL-quoted
    plots: bool = False  # figures shown at their size; image grids are scaled up


Block = Heading | Text | Table | Images


def to_rich(table: Table) -> RichTable:
    rich_table = RichTable(title=table.title, title_justify="left")
    for index, column in enumerate(table.columns):
        # `reconstruction/nelbo`, `backbone.latent_dim`: one line per part keeps columns narrow.
        header = column.replace("/", "/\n").replace(".", ".\n")
        numeric = index in table.numeric
        # Numbers fold onto a second line rather than lose digits to an ellipsis.
        rich_table.add_column(
            header,
            justify="right" if numeric else "left",
            overflow="fold" if numeric else "ellipsis",
        )
    for row in table.rows:
        rich_table.add_row(*row)
    return rich_table


def to_markdown(title: str, blocks: list[Block]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|") or " "

    lines = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += [f"## {block.text}", ""]
        elif isinstance(block, Text):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            align = ["---:" if i in block.numeric else "---" for i in range(len(block.columns))]
            lines += [f"**{block.title}**", ""]
            lines.append("| " + " | ".join(cell(c) for c in block.columns) + " |")
            lines.append("| " + " | ".join(align) + " |")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        else:
            lines += [f"**{block.caption}**", ""]
            lines += [" ".join(f"![{path.rsplit('/', 1)[-1]}]({path})" for path in block.paths), ""]
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem;
       color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
div.wide { overflow-x: auto; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .6rem; }
td { white-space: nowrap; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; }
figcaption { font-size: .85rem; color: #555; }
img.grid { width: 18rem; image-rendering: pixelated; }
img.plot { max-width: 100%; }
"""


def to_html(title: str, blocks: list[Block]) -> str:
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h2>{esc(block.text)}</h2>")
        elif isinstance(block, Text):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(column)}</th>" for column in block.columns)
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{esc(c)}</td>' if i in block.numeric else f"<td>{esc(c)}</td>"
                    for i, c in enumerate(row)
                )
                + "</tr>"
                for row in block.rows
            )
            body.append(
                f'<div class="wide"><table><caption>{esc(block.title)}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
            )
        else:
            kind = "plot" if block.plots else "grid"
            figures = "".join(
                f'<figure><img class="{kind}" src="{esc(path)}" alt="{esc(path)}">'
                f"<figcaption>{esc(path.rsplit('/', 1)[-1])}</figcaption></figure>"
                for path in block.paths
            )
            body.append(f"<h3>{esc(block.caption)}</h3><div>{figures}</div>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
