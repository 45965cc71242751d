"""The report page: plots saved as PNGs beside the HTML and embedded in it (data URLs), tables as HTML."""
from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field
from pathlib import Path


def new_figure(w: float = 8.0, h: float = 3.2):
    """A matplotlib Figure drawn by the Agg canvas: no pyplot state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


@dataclass
class Page:
    title: str
    out: Path
    sections: list[str] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)

    def text(self, s: str, tag: str = "p"):
        self.sections.append(f"<{tag}>{html.escape(s)}</{tag}>")

    def plot(self, name: str, fig, caption: str):
        """Save `fig` as <stem>-<name>.png beside the report and embed the same bytes in the page."""
        path = self.out.with_name(f"{self.out.stem}-{name}.png")
        fig.savefig(path, format="png")
        self.pngs.append(path)
        b64 = base64.b64encode(path.read_bytes()).decode("ascii")
        self.sections.append(f'<figure id="{html.escape(name)}"><img alt="{html.escape(caption)}" '
                             f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}</figcaption></figure>')

    def table(self, header: list[str], rows: list[list], caption: str = ""):
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.sections.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def write(self) -> dict:
        doc = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
               f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
               f"<p class=\"made\">made {time.strftime('%Y-%m-%d %H:%M:%S')} by edge-runtime report</p>"
               + "\n".join(self.sections) + "</body></html>\n")
        self.out.write_text(doc)
        return {"html": str(self.out), "pngs": [str(p) for p in self.pngs]}


def _cell(c) -> str:
    if c is None:
        return "n/a"
    if isinstance(c, float):
        return f"{c:.0f}" if abs(c) >= 100 else f"{c:.3g}"
    return str(c)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 1em auto; padding: 0 1em; color: #222; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; } figcaption { color: #555; font-size: 90%; }
table { border-collapse: collapse; margin: 1em 0; font-size: 90%; } caption { text-align: left; font-weight: bold; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; } th { background: #f0f0f0; }
.made { color: #888; font-size: 80%; } .warn { color: #a40; }
"""
