"""The README's pictures, composed from the quality benchmark's outputs (so the README shows exactly
what the benchmark scored): photo | painting | result at the defaults, one row per pair, and one
photo at three style strengths.

    python bench/quality.py --configs default,strength_0.25,strength_0.75 --out /tmp/q
    python tools/readme_images.py /tmp/q     # writes assets/readme/results.jpg and strength.jpg

The benchmark's PNGs are not committed (the contact sheets in bench/results/quality are), so the
folder is that of a fresh run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
OUT = ROOT / "assets" / "readme"
PAIRS = [("tubingen_starry", "tubingen.jpg", "starry_night.jpg"),
         ("golden_gate_scream", "golden_gate.jpg", "the_scream.jpg"),
         ("tubingen_shipwreck", "tubingen.jpg", "shipwreck.jpg")]
STRENGTH_PAIR = "tubingen_starry"
STRENGTHS = (("strength_0.25", "style strength 0.25"), ("default", "0.5 (default)"), ("strength_0.75", "0.75"))
CELL = 360


def fit(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((CELL, CELL))
        return im


def sheet(rows, labels) -> Image.Image:
    """A grid of cells with a caption under each."""
    font = ImageFont.load_default()
    cells = [[fit(p) for p in row] for row in rows]
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
    p = argparse.ArgumentParser(description="the README's result pictures from a quality benchmark run")
    p.add_argument("results", type=Path, help="the --out folder of bench/quality.py (its images/ holds the PNGs)")
    results = p.parse_args().results / "images"
    rows = [[IMAGES / photo, IMAGES / painting, results / f"{pair}__default.png"] for pair, photo, painting in PAIRS]
    labels = [["photo", "painting", "result at the defaults (512 px)"] for _ in PAIRS]
    sheet(rows, labels).save(OUT / "results.jpg", quality=86)
    row = [results / f"{STRENGTH_PAIR}__{config}.png" for config, _ in STRENGTHS]
    sheet([row], [[label for _, label in STRENGTHS]]).save(OUT / "strength.jpg", quality=86)


if __name__ == "__main__":
    main()
