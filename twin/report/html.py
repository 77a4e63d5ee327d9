"""Small HTML builders for the self-contained report page (no external assets)."""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

from twin.report.numbers import fmt

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #345;padding-bottom:.2em} h2{margin-top:2em;color:#234}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right} th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}
.missing{color:#8a5a00;background:#fff6e0;padding:.5em .8em;border-left:4px solid #e0a000}
.verdict{padding:.4em .8em;margin:.4em 0;border-left:4px solid #888}
.supported{border-color:#2a7} .not-supported{border-color:#c44} .inconclusive{border-color:#aa8} .consistent{border-color:#7a9}
figure{margin:1em 0} figcaption{font-size:.9em;color:#555} img{max-width:100%}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
nav a{margin-right:1em}
"""


def esc(x: Any) -> str:
    """HTML-escaped text of a value (numbers through :func:`twin.report.numbers.fmt`)."""
    return html.escape(fmt(x) if not isinstance(x, str) else x)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> str:
    """A table; every cell goes through :func:`esc`."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def para(text: str, cls: str | None = None) -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<p{c}>{esc(text)}</p>"


def missing(text: str) -> str:
    return para(text, "missing")


def figure(png_b64: str, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png_b64}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def details(summary: str, inner: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{inner}</details>"


def page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page; ``sections`` are ``(anchor, heading, inner_html)``."""
    nav = "".join(f'<a href="#{a}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{esc(h)}</h2>{inner}</section>' for a, h, inner in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><nav>{nav}</nav>{body}</body></html>\n")
