"""Large outputs: time and peak memory of the command line, untiled and with ``--tile-size``.

Each run is ``python -m nst_core CONTENT STYLE -s SIZE [--tile-size T] --steps N --start-size 0``
in its own process (one scale, so the numbers are those of that size); its peak memory is the
process' peak RSS. A 64 px run gives what torch, the model and the images take (*load*), so
*above load* is what the run itself needed. A 1024 px JPEG and a full-resolution crop of each
output are written to look at the tile borders.

    python bench/tiling.py                                   # 1024 and 2048 px both ways, 4096 px tiled
    python bench/tiling.py --runs 256:0 256:128 --steps 3    # smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, machine, md_table, run_cli, scratch  # noqa: E402

SAMPLES = ROOT / "assets" / "samples"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=["1024:0", "1024:512", "2048:0", "2048:1024", "4096:1024"],
                   help="SIZE:TILE (0: untiled)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--content", default=str(SAMPLES / "tubingen.jpg"))
    p.add_argument("--style", default=str(SAMPLES / "starry_night.jpg"))
    p.add_argument("--out", default=str(scratch("tiling")),
                   help="results folder (bench/results/tiling to update the committed ones)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = [args.content, args.style, "--start-size", "0", "--overwrite", "-q"]
    load = run_cli(base + ["-o", out / "load.png", "-s", "64", "--steps", "1"])["peak_mib"]
    rows, raw = [], []
    for spec in args.runs:
        size, tile = (int(v) for v in spec.split(":"))
        png = out / f"tiling_{size}_{tile}.png"
        r = run_cli(base + ["-o", png, "-s", size, "--tile-size", tile, "--steps", args.steps])
        raw.append(dict(size=size, tile=tile, steps=args.steps, **r))
        ok = r["rc"] == 0
        rows.append([size, tile or "untiled", f"{r['wall_s']:.0f}" if ok else "failed",
                     f"{r['wall_s'] / args.steps:.2f}" if ok else "", f"{(r['peak_mib'] - load) / 1024:.2f}"])
        print(rows[-1], flush=True)
        if ok:
            _previews(png, out)
    (out / "tiling.json").write_text(json.dumps(dict(machine=machine(), load_mib=load, runs=raw), indent=1))
    table = md_table(["px", "tile", "wall s", "s per iteration (incl. setup)", "GiB above load"], rows)
    (out / "README.md").write_text(f"Measured on {machine()}; {args.steps} iterations at one scale; "
                                   f"load {load:.0f} MiB.\n\n{table}")


def _previews(png: Path, out: Path) -> None:
    """A 1024 px JPEG of the whole output and a 512 px crop at full resolution; the PNG is dropped."""
    from PIL import Image
    with Image.open(png) as im:
        w, h = im.size
        small = im.copy()
        small.thumbnail((1024, 1024))
        small.save(out / f"{png.stem}.jpg", quality=85)
        c = min(512, w, h)
        im.crop(((w - c) // 2, (h - c) // 2, (w + c) // 2, (h + c) // 2)).save(out / f"{png.stem}_crop.jpg", quality=90)
    png.unlink()


if __name__ == "__main__":
    main()
