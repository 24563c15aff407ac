"""One self-contained HTML page: plotly.js inlined once in the head, every figure a div that draws itself.

No CDN, no fonts, no network: the file opens from a laptop on a train. Figures are passed as plotly objects
and rendered with ``include_plotlyjs=False``, so a page of ten figures still carries one copy of the library.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from plotly.offline import get_plotlyjs

from core.home import PROJECT_ROOT

#: Where reports go by default: the project's ``reports/out``, whatever the current folder.
OUT_DIR = PROJECT_ROOT / "reports" / "out"

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --accent:#2563eb; --warn:#b91c1c; --ok:#15803d; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color:var(--ink); background:#f5f7fa; }
header { background:#fff; border-bottom:1px solid var(--line); padding:20px 32px; }
header h1 { margin:0 0 4px; font-size:24px; }
header .sub { color:var(--muted); }
.synthetic { background:var(--warn); color:#fff; padding:8px 32px; font-weight:600; letter-spacing:.02em; }
main { max-width:1280px; margin:0 auto; padding:20px 32px 48px; }
.verdict { font-size:18px; background:#fff; border-left:4px solid var(--accent); padding:12px 16px;
           margin:0 0 20px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(180px, 1fr)); gap:12px;
         margin:0 0 24px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:22px; font-weight:600; }
.card .detail { color:var(--muted); font-size:12px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:0 0 20px; }
section h2 { margin:0 0 4px; font-size:18px; }
section .why { color:var(--muted); margin:0 0 8px; }
section .missing { color:var(--muted); font-style:italic; }
table { border-collapse:collapse; margin:8px 0; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:4px 12px 4px 0; text-align:left; vertical-align:top; }
th { color:var(--muted); font-weight:600; }
td.num { text-align:right; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:16px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:0 0 24px; }
"""


@dataclass(frozen=True)
class Card:
    """One headline number at the top of the page."""

    label: str
    value: str
    detail: str = ""


@dataclass
class Section:
    """A titled block: a sentence saying what to look for, then figures and/or raw HTML (tables)."""

    title: str
    why: str
    figures: list[Any] = field(default_factory=list)
    html: str = ""
    missing: str = ""  # shown instead of the figure when it cannot be drawn, with the reason


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain table; numbers are right-aligned (cells are escaped, numbers formatted by the caller)."""

    def cell(value: object, tag: str) -> str:
        text = html.escape(str(value))
        numeric = tag == "td" and re.fullmatch(r"[-+]?[\d.,%\s\[\]e+-]+", str(value) or "x") is not None
        return f'<{tag} class="num">{text}</{tag}>' if numeric else f"<{tag}>{text}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_div(fig: Any, div_id: str) -> str:
    """A figure as a div plus the script that draws it, without the library."""
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


def render_page(
    *,
    title: str,
    subtitle: str,
    sections: Sequence[Section],
    cards: Sequence[Card] = (),
    verdict: str = "",
    synthetic: bool = False,
    footer: str = "",
) -> str:
    """The whole page as one string."""
    parts: list[str] = []
    used: set[str] = set()
    for section in sections:
        sid = slug(section.title)
        while sid in used:
            sid += "-x"
        used.add(sid)
        body = [f'<section id="{sid}"><h2>{html.escape(section.title)}</h2>']
        if section.why:
            body.append(f'<p class="why">{html.escape(section.why)}</p>')
        if section.missing:
            body.append(f'<p class="missing">{html.escape(section.missing)}</p>')
        for n, fig in enumerate(section.figures):
            body.append(figure_div(fig, f"fig-{sid}-{n}"))
        body.append(section.html)
        body.append("</section>")
        parts.append("".join(body))
    card_html = "".join(
        f'<div class="card"><div class="label">{html.escape(c.label)}</div>'
        f'<div class="value">{html.escape(c.value)}</div>'
        + (f'<div class="detail">{html.escape(c.detail)}</div>' if c.detail else "")
        + "</div>"
        for c in cards
    )
    banner = (
        '<div class="synthetic">SYNTHETIC DATA: these numbers describe the embedded demo dataset, '
        "not real users.</div>"
        if synthetic
        else ""
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"{banner}<header><h1>{html.escape(title)}</h1>"
        f"<div class='sub'>{html.escape(subtitle)}</div></header>"
        "<main>"
        + (f'<p class="verdict">{html.escape(verdict)}</p>' if verdict else "")
        + (f'<div class="cards">{card_html}</div>' if card_html else "")
        + "".join(parts)
        + "</main>"
        + (f"<footer>{html.escape(footer)}</footer>" if footer else "")
        + "</body></html>\n"
    )
