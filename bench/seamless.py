"""Seamless output: does a seam show where the result's tiles meet?

For each painting, a texture (``--texture``) and the bundled photo stylised, each with and without
``--seamless`` (same seed), from the command line in its own process. Each output is scored by
``nst_core.seam_ratio``: the mean absolute difference across the borders of the image tiled 2×2,
over the mean absolute difference of neighbouring pixels inside it (1.0: the borders are like
anywhere else; a seam is above). Writes RESULTS.md, results.json and a JPEG sheet per painting
(each output tiled 2×2, seamless on the left).

    python bench/seamless.py                                   # 384 px, three paintings
    python bench/seamless.py --size 128 --extra "--steps 20"   # a quick rehearsal
    python bench/seamless.py --out bench/results/seamless      # update the committed results
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nst_core  # noqa: E402
from bench.common import ROOT, git_commit, log, machine, md_table, run_cli, scratch  # noqa: E402

SAMPLES = ROOT / "assets" / "samples"
PAINTINGS = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")
PHOTO = "tubingen.jpg"
TARGET = 1.10   # the seamless run's seam within 10% of the inside's neighbour differences


def runs(painting: str, size: int, out: Path, extra) -> dict:
    """{(kind, seamless): (png, cli record)} for the texture and the photo, with and without the switch."""
    done = {}
    for kind in ("texture", "photo"):
        for switch in (True, False):
            png = out / f"{Path(painting).stem}__{kind}{'__seamless' if switch else ''}.png"
            inputs = ["--texture", SAMPLES / painting] if kind == "texture" else [SAMPLES / PHOTO, SAMPLES / painting]
            args = [*inputs, "-o", png, "--size", size, "--overwrite", "-q", *extra] + (["--seamless"] if switch else [])
            log(f"  {painting} {kind} seamless={switch} …")
            rec = run_cli(args)
            if rec["rc"] != 0:
                raise SystemExit(f"the CLI failed: {rec['tail']}")
            done[(kind, switch)] = (png, rec)
    return done


def sheet(done: dict, path: Path) -> None:
    """Each output tiled 2×2, a row per kind, seamless first; a small JPEG."""
    from PIL import Image
    tiles = {k: nst_core.to_pil(nst_core.tiled_2x2(nst_core.load_image(png))) for k, (png, _) in done.items()}
    cell = 360
    im = Image.new("RGB", (2 * cell, 2 * cell), (24, 24, 24))
    for r, kind in enumerate(("texture", "photo")):
        for c, switch in enumerate((True, False)):
            t = tiles[(kind, switch)]
            t.thumbnail((cell, cell))
            im.paste(t, (c * cell, r * cell))
    im.save(path, "JPEG", quality=82, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--paintings", default=",".join(PAINTINGS))
    p.add_argument("--extra", default="", help="further CLI flags for every run")
    p.add_argument("--out", type=Path, default=scratch("seamless"),
                   help="results folder (bench/results/seamless to update the committed ones)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, records = [], []
    for painting in args.paintings.split(","):
        done = runs(painting, args.size, args.out, shlex.split(args.extra))
        sheet(done, args.out / f"{Path(painting).stem}.jpg")
        for (kind, switch), (png, rec) in done.items():
            ratio = nst_core.seam_ratio(nst_core.load_image(png))
            records.append(dict(painting=painting, kind=kind, seamless=switch, seam_ratio=ratio,
                                wall_s=round(rec["wall_s"], 1)))
            rows.append([painting, kind, "on" if switch else "off", ratio, rec["wall_s"]])
        for png, _ in done.values():
            png.unlink()   # the sheet shows them; full-size PNGs would only weigh on the results
    head = [f"# Seams: {args.size} px, extra flags `{args.extra or 'none'}`",
            f"- commit {git_commit()}; {machine()}; {time.strftime('%Y-%m-%d %H:%M')}; "
            f"{(time.perf_counter() - t0) / 60:.1f} min",
            "- seam ratio = mean |difference| across the borders of the output tiled 2×2 over the mean "
            "|difference| of neighbouring pixels inside (1: no seam); the target for seamless runs is "
            f"at most {TARGET:.2f}.",
            "- sheets: `<painting>.jpg`, each output tiled 2×2; top row the texture, bottom row the photo; "
            "left seamless, right not."]
    (args.out / "RESULTS.md").write_text("\n".join(head) + "\n\n"
                                         + md_table(["painting", "kind", "seamless", "seam ratio", "wall s"], rows))
    (args.out / "results.json").write_text(json.dumps(records, indent=1))
    log(f"wrote {args.out / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
