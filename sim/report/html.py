"""One self-contained HTML page per command: figures embedded as base64 PNGs, tables as HTML, the scenario
and the provenance of the numbers as text. No scripts, no external links, no fonts to fetch: it opens
offline, mails as one file and archives as one file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from sim import __version__

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .subtitle { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 0.5rem 0 1.5rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
pre { background: #f7f7f7; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }
footer { color: #777; font-size: 0.8rem; margin-top: 2rem; }
"""


class Report:
    """Blocks appended in reading order, written as one file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[str] = []

    def text(self, paragraph: str) -> None:
        self.blocks.append(f"<p>{html.escape(paragraph)}</p>")

    def table(self, heading: str, frame: pd.DataFrame, float_format: str = "{:.4g}") -> None:
        body = frame.to_html(
            index=False, na_rep="-", float_format=float_format.format, border=0, classes="data", escape=True
        )
        self.blocks.append(f"<h2>{html.escape(heading)}</h2>\n{body}")

    def figure(self, png: Path, caption: str) -> None:
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        self.blocks.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def code(self, heading: str, text: str) -> None:
        self.blocks.append(f"<h2>{html.escape(heading)}</h2>\n<pre>{html.escape(text)}</pre>")

    def render(self) -> str:
        subtitle = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{html.escape(self.title)}</h1>{subtitle}\n"
            + "\n".join(self.blocks)
            + f"\n<footer>Written by servesim {html.escape(__version__)}. Every number is simulated unless a "
            "table says otherwise; the provenance table names the source of each input.</footer>\n"
            "</body></html>\n"
        )

    def write(self, path: Path) -> Path:
        path.write_text(self.render(), encoding="utf-8")
        return path
