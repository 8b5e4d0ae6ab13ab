"""A self-contained HTML gallery of search results (thumbnails inlined as data URIs)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

from kit.job.search import Hit

__all__ = ["render_gallery", "write_gallery"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.2rem;margin:0 0 .3rem} p.sub{color:#666;margin:0 0 1rem;font-size:.9rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:8px;overflow:hidden}
figure img{width:100%;aspect-ratio:1/1;object-fit:contain;background:#eee;display:block}
figure .noimg{width:100%;aspect-ratio:1/1;display:flex;align-items:center;justify-content:center;background:#eee;color:#999}
figcaption{padding:.45rem .55rem;font-size:.8rem;line-height:1.35}
.rank{color:#888}.score{font-weight:600}.name{word-break:break-all}
.label{display:inline-block;border-radius:4px;padding:0 .35rem;font-size:.75rem;margin-left:.3rem;color:#fff}
.label-identical{background:#1b7f3b}.label-near-identical{background:#2f8fbf}.label-similar{background:#b58a00}
.label-unrelated{background:#888}
details{margin-top:.3rem}pre{white-space:pre-wrap;word-break:break-word;font-size:.72rem;margin:.2rem 0 0}
"""


def _card(rank: int, hit: Hit) -> str:
    src = hit.source
    name = str(src.get("file_name") or hit.id)
    thumb = hit.thumbnail
    img = (f'<img alt="{html.escape(name)}" src="data:image/jpeg;base64,{thumb}">' if thumb
           else '<div class="noimg">no thumbnail</div>')
    uri = src.get("source_uri")
    link = f'<a class="name" href="{html.escape(str(uri))}">{html.escape(name)}</a>' if uri else \
        f'<span class="name">{html.escape(name)}</span>'
    label = (f'<span class="label label-{html.escape(hit.label)}">{html.escape(hit.label)}</span>'
             if hit.label else "")
    shown = {k: v for k, v in src.items() if k not in ("thumbnail",)}
    meta = html.escape(json.dumps(shown, indent=1, ensure_ascii=False, default=str))
    return (f'<figure data-id="{html.escape(hit.id)}">{img}<figcaption>'
            f'<span class="rank">#{rank}</span> <span class="score">{hit.score:.4f}</span>{label}<br>{link}'
            f'<details><summary>metadata</summary><pre>{meta}</pre></details></figcaption></figure>')


def render_gallery(hits: Sequence[Hit], *, title: str, subtitle: str = "") -> str:
    """The gallery as one HTML string (no external resources)."""
    cards = "\n".join(_card(i, h) for i, h in enumerate(hits, start=1))
    empty = "" if hits else "<p>No results.</p>"
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(subtitle)}</p>{empty}"
        f"<div class=\"grid\">\n{cards}\n</div></body></html>\n"
    )


def write_gallery(path: str | Path, hits: Sequence[Hit], *, title: str, subtitle: str = "") -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_gallery(hits, title=title, subtitle=subtitle), encoding="utf-8")
    return p
