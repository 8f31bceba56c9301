"""The README's pictures: sample photos stylised at the command line's defaults, each shown next to
its inputs (photo | painting | result), one row per pair, plus the style-strength row.

    python tools/readme_images.py            # writes assets/readme/results.jpg and strength.jpg
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import run_cli  # noqa: E402

SAMPLES = ROOT / "assets" / "samples"
OUT = ROOT / "assets" / "readme"
PAIRS = [("tubingen.jpg", "starry_night.jpg"), ("golden_gate.jpg", "the_scream.jpg"), ("tubingen.jpg", "shipwreck.jpg")]
STRENGTHS = (0.25, 0.5, 0.75)
CELL = 360


def stylised(content: str, style: str, extra=()) -> Image.Image:
    out = OUT / "work" / f"{Path(content).stem}_{Path(style).stem}{'_'.join(extra)}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        r = run_cli([SAMPLES / content, SAMPLES / style, "-o", out, "-q", *extra])
        if r["rc"] != 0:
            raise SystemExit("\n".join(r["tail"]))
    return Image.open(out).convert("RGB")


def fit(im: Image.Image) -> Image.Image:
    im = im.copy()
    im.thumbnail((CELL, CELL))
    return im


def sheet(rows, labels) -> Image.Image:
    """A grid of cells with a caption under each."""
    font = ImageFont.load_default()
    cells = [[fit(im) for im in row] for row in rows]
    h_row = max(c.height for row in cells for c in row) + 22
    img = Image.new("RGB", (len(cells[0]) * (CELL + 8) + 8, len(cells) * h_row + 8), "white")
    d = ImageDraw.Draw(img)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            x, y = 8 + c * (CELL + 8), 8 + r * h_row
            img.paste(cell, (x, y))
            d.text((x, y + cell.height + 4), labels[r][c], fill=(40, 40, 40), font=font)
    return img


def main() -> None:
    rows, labels = [], []
    for content, style in PAIRS:
        rows.append([Image.open(SAMPLES / content), Image.open(SAMPLES / style), stylised(content, style)])
        labels.append([f"photo: {content}", f"painting: {style}", "result (defaults, 512 px)"])
    sheet(rows, labels).save(OUT / "results.jpg", quality=86)
    row = [stylised("golden_gate.jpg", "starry_night.jpg", ("--style-strength", str(s))) for s in STRENGTHS]
    sheet([row], [[f"--style-strength {s}" for s in STRENGTHS]]).save(OUT / "strength.jpg", quality=86)


if __name__ == "__main__":
    main()
