"""Quality benchmark: our command line next to neural-style's published outputs, on one fixed yardstick.

For each pair of /work/shared/reference (a photo and a painting from /work/shared/images, and the image
jcjohnson/neural-style made of them), and for pairs of the same photos with paintings of people (no
neural-style output exists for those), runs ``python -m nst_core PHOTO PAINTING -o OUT.png`` at its
defaults and, where the CLI offers the flags, at other style strengths and style losses. Then scores
every output, ours and neural-style's, with ``quality_metrics`` (content, style, structure), counts the
faces in it that its photo does not have (``faces.py``, MTCNN; skipped with a note where facenet-pytorch
is not installed), and writes RESULTS.md, results.json and one labelled contact sheet per pair (JPEG,
new faces boxed in red).

    python bench/quality.py                                   # all pairs and configs at 512 px, into a temp folder
    python bench/quality.py --out bench/results/quality       # the same, updating the committed results
    python bench/quality.py --size 128 --extra "--steps 20 --start-size 0"   # smoke run
    python bench/quality.py --reuse                           # rescore, running only what is missing
    python bench/quality.py --pairs people --configs default,strength_0.75   # the paintings of people

Scores depend on the size: compare rows of one run (neural-style's image is resized to the same size).
RESULTS.md covers the pairs and configs of this invocation only; ``--reuse`` makes rescoring all of them cheap.
A full run (11 pairs x 8 configs at 512 px) is 88 CLI runs: about 1-2 min each on an idle 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git_commit, log, machine, md_table, scratch  # noqa: E402
import quality_metrics as qm  # noqa: E402
from faces import MIN_PROB as FACE_PROB  # noqa: E402

IMAGES = Path("/work/shared/images")
REFERENCE = Path("/work/shared/reference/neural-style")
REFERENCE_NOTE = "neural-style (Lua/Torch, Caffe VGG19, CW 5, SW 100, TV 1e-3, 1000 L-BFGS it. from noise, 512 px)"
DEFAULT_OUT = scratch("quality")   # --out bench/results/quality updates the committed results

# name: (photo, painting), as /work/shared/reference/README.md lists them
PAIRS: Dict[str, Tuple[str, str]] = {
    "tubingen_starry": ("tubingen.jpg", "starry_night.jpg"),
    "tubingen_scream": ("tubingen.jpg", "the_scream.jpg"),
    "tubingen_shipwreck": ("tubingen.jpg", "shipwreck.jpg"),
    "golden_gate_scream": ("golden_gate.jpg", "the_scream.jpg"),
    "golden_gate_starry": ("golden_gate.jpg", "starry_night_crop.png"),
}
# Paintings of people on both photos: the painting's brushwork and colour, never its faces or figures.
PEOPLE: Dict[str, Tuple[str, str]] = {
    "golden_gate_portrait": ("golden_gate.jpg", "van_gogh_self_portrait.jpg"),
    "tubingen_portrait": ("tubingen.jpg", "van_gogh_self_portrait.jpg"),
    "golden_gate_tahitian": ("golden_gate.jpg", "gauguin_tahitian_women.jpg"),
    "tubingen_tahitian": ("tubingen.jpg", "gauguin_tahitian_women.jpg"),
    "golden_gate_cafe": ("golden_gate.jpg", "cafe_terrace.jpg"),
    "tubingen_cafe": ("tubingen.jpg", "cafe_terrace.jpg"),
}
GROUPS = {"reference": list(PAIRS), "people": list(PEOPLE)}
PAIRS.update(PEOPLE)

STRENGTHS = ("0.25", "0.5", "0.75")
STYLE_LOSSES = ("gram", "mean_std", "w2", "sliced_w", "gram_deep_ms")


def all_configs() -> Dict[str, List[str]]:
    """Config name -> the CLI flags it adds to the defaults."""
    configs = {"default": []}
    configs.update({f"strength_{s}": ["--style-strength", s] for s in STRENGTHS})
    configs.update({f"loss_{n}": ["--style-loss", n] for n in STYLE_LOSSES})
    configs["loss_gram_deep_ms_0.75"] = ["--style-loss", "gram_deep_ms", "--style-strength", "0.75"]
    return configs


# ---------------------------------------------------------------------------------------------
# What the CLI offers

def cli_help() -> str:
    out = subprocess.run([sys.executable, "-m", "nst_core", "--help"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"`python -m nst_core --help` failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout


def unsupported_reason(flags: List[str], help_text: str) -> Optional[str]:
    """Why the CLI cannot run these flags yet (None if it can), read from its --help."""
    if not flags:
        return None
    flag, value = flags[0], flags[1]
    if not re.search(re.escape(flag) + r"(?![\w-])", help_text):
        return f"the CLI has no {flag} yet"
    choices = re.search(re.escape(flag) + r"\s+\{([^}]*)\}", help_text)
    if choices and value not in choices.group(1).split(","):
        return f"{flag} does not offer {value} (choices: {choices.group(1)})"
    return None


# ---------------------------------------------------------------------------------------------
# Running the CLI

def cli_args(pair: str, flags: List[str], png: Path, size: int, extra: List[str]) -> List[str]:
    photo, painting = PAIRS[pair]
    return ([str(IMAGES / photo), str(IMAGES / painting), "-o", str(png), "--size", str(size), "--overwrite",
             "--quiet"] + extra + flags)


def run_cli(pair: str, flags: List[str], png: Path, size: int, extra: List[str]) -> Dict[str, object]:
    cmd = [sys.executable, "-m", "nst_core"] + cli_args(pair, flags, png, size, extra)
    png.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    meta = {"args": cmd[3:], "seconds": round(seconds, 2), "returncode": out.returncode,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if out.returncode != 0:
        meta["error"] = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
    png.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def run_or_reuse(pair: str, config: str, flags: List[str], args) -> Dict[str, object]:
    png = args.out / "images" / f"{pair}__{config}.png"
    meta_path = png.with_suffix(".json")
    if args.reuse and png.exists():
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"seconds": None}
        meta["reused"] = True
        log(f"  {pair} / {config}: reused {png.name}")
        if meta.get("args") not in (None, cli_args(pair, flags, png, args.size, args.extra_list)):
            log(f"    note: it was made with other flags: {' '.join(meta['args'])}")
        return dict(meta, image=png)
    if args.no_run:
        log(f"  {pair} / {config}: no output, not run (--no-run)")
        return {"error": "not run", "image": None}
    log(f"  {pair} / {config}: running the CLI {' '.join(flags) or '(defaults)'} …")
    meta = run_cli(pair, flags, png, args.size, args.extra_list)
    log(f"    {meta['seconds']:.1f} s" + (f", FAILED: {meta['error']}" if meta["returncode"] else ""))
    return dict(meta, image=png if meta["returncode"] == 0 else None)


# ---------------------------------------------------------------------------------------------
# Scoring

class Scorer:
    """One metric per (pair, output size), built once and reused for every image of that size; and
    the face count: faces in the image beyond those of the photo at the same size."""

    def __init__(self, faces: bool = True):
        import nst_core
        self.model = nst_core.load_vgg()
        self.metrics: Dict[Tuple[str, Tuple[int, int]], qm.QualityMetric] = {}
        self.detector, self.no_faces = None, None
        if faces:
            try:
                import faces as facelib
                self.detector = facelib.detector()
            except SystemExit as e:   # facenet-pytorch missing: scores without the face column
                self.no_faces = str(e)
        self.photo_faces: Dict[Tuple[str, Tuple[int, int]], int] = {}

    def score(self, pair: str, image) -> Dict[str, object]:
        wh = (image.shape[-1], image.shape[-2])
        photo, painting = PAIRS[pair]
        if (pair, wh) not in self.metrics:
            self.metrics[(pair, wh)] = qm.metric_for(self.model, IMAGES / photo, IMAGES / painting, wh)
        row: Dict[str, object] = dict(self.metrics[(pair, wh)](image))
        if self.detector is not None:
            if (pair, wh) not in self.photo_faces:
                self.photo_faces[(pair, wh)] = self.detector.count(qm.load_rgb(IMAGES / photo, wh))
            found = self.detector(image)
            row["faces"] = [[round(p, 3)] + [round(v) for v in box] for p, box in found]
            row["new_faces"] = max(0, len(found) - self.photo_faces[(pair, wh)])
        return row


def reference_image(pair: str, size: int):
    """neural-style's image at our output size (its PNGs are 512 px on the long side); None if it has none."""
    path = REFERENCE / f"{pair}.png"
    return qm.load_rgb(path, qm.long_side_size(path, size)) if path.exists() else None


def score_pair(pair: str, runs: Dict[str, Dict[str, object]], scorer: Scorer, size: int):
    """Rows of scores (ours, neural-style's, the photo's) and the images they were computed from."""
    photo_path = IMAGES / PAIRS[pair][0]
    rows = []
    ours = {c: qm.load_rgb(m["image"]) for c, m in runs.items() if m.get("image") is not None}
    reference = reference_image(pair, size)
    images = dict(list(ours.items())[:1] + ([("neural-style", reference)] if reference is not None else [])
                  + list(ours.items())[1:])
    sized_like = next(iter(ours.values()), reference)  # our size first: neural-style's may differ by a pixel
    if sized_like is None:
        return [{"pair": pair, "config": c, "error": m.get("error", "not run")} for c, m in runs.items()], {}
    images["photo (unchanged)"] = qm.load_rgb(photo_path, (sized_like.shape[-1], sized_like.shape[-2]))
    for name, image in images.items():
        meta = runs.get(name, {})
        row = {"pair": pair, "config": name, "size": [image.shape[-1], image.shape[-2]],
               "seconds": meta.get("seconds"), "flags": meta.get("args"), "reused": meta.get("reused", False)}
        row.update(scorer.score(pair, image))
        rows.append(row)
    for config, meta in runs.items():
        if meta.get("image") is None:
            rows.append({"pair": pair, "config": config, "error": meta.get("error", "not run")})
    return rows, images


# ---------------------------------------------------------------------------------------------
# Contact sheets

TILE_W, TILE_H, LABEL_H = 400, 300, 40


def tile(image, title: str, subtitle: str, boxes=()):
    """One labelled cell of the sheet: the image fitted into TILE_W x TILE_H, two lines of text below;
    ``boxes`` (x0, y0, x1, y1 in the image's pixels) outlined in red."""
    from PIL import Image, ImageDraw, ImageFont
    import nst_core
    im = nst_core.to_pil(image) if not isinstance(image, Image.Image) else image
    s = min(TILE_W / im.size[0], TILE_H / im.size[1])
    im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.LANCZOS)
    cell = Image.new("RGB", (TILE_W, TILE_H + LABEL_H), (24, 24, 24))
    x0, y0 = (TILE_W - im.size[0]) // 2, (TILE_H - im.size[1]) // 2
    cell.paste(im, (x0, y0))
    draw = ImageDraw.Draw(cell)
    for b in boxes:
        draw.rectangle([x0 + b[0] * s, y0 + b[1] * s, x0 + b[2] * s, y0 + b[3] * s], outline=(255, 40, 40), width=2)
    draw.text((6, TILE_H + 2), title, fill=(240, 240, 240), font=ImageFont.load_default(size=16))
    draw.text((6, TILE_H + 21), subtitle, fill=(180, 180, 180), font=ImageFont.load_default(size=14))
    return cell


def scores_text(row: Dict[str, object]) -> str:
    faces = f"  new faces {row['new_faces']}" if "new_faces" in row else ""
    return f"content {row['content']:.2f}  style {row['style']:.3f}  structure {row['structure']:.2f}{faces}"


def face_boxes(row: Dict[str, object]):
    return [f[1:] for f in row.get("faces", [])] if row.get("new_faces") else []


def contact_sheet(pair: str, images: Dict[str, object], rows: List[Dict[str, object]], path: Path) -> None:
    """Photo, painting, ours, neural-style; then our strengths; then our style losses (rows only if run)."""
    from PIL import Image
    by_config = {r["config"]: r for r in rows if "content" in r}
    photo, painting = PAIRS[pair]
    with Image.open(IMAGES / photo) as p, Image.open(IMAGES / painting) as q:
        first = [tile(p.convert("RGB"), f"photo: {photo}", ""), tile(q.convert("RGB"), f"painting: {painting}", "")]
    lines = [first + [tile(images[c], label, scores_text(by_config[c]), face_boxes(by_config[c]))
                      for c, label in (("default", "ours, defaults"), ("neural-style", "neural-style (reference)"))
                      if c in images]]
    for prefix in ("strength_", "loss_"):
        names = [c for c in images if c.startswith(prefix)]
        if names:
            line = [tile(images[c], f"ours, {c.replace('_', ' ', 1)}", scores_text(by_config[c]),
                         face_boxes(by_config[c])) for c in names]
            if prefix == "strength_" and "default" in images and len(names) > 1:  # ends at the default strength
                line.append(tile(images["default"], "ours, defaults", scores_text(by_config["default"])))
            lines.append(line)
    cols = max(len(line) for line in lines)
    sheet = Image.new("RGB", (cols * TILE_W, len(lines) * (TILE_H + LABEL_H)), (24, 24, 24))
    for i, line in enumerate(lines):
        for j, cell in enumerate(line):
            sheet.paste(cell, (j * TILE_W, i * (TILE_H + LABEL_H)))
    save_small_jpeg(sheet, path)


def save_small_jpeg(image, path: Path, limit: int = 200_000) -> None:
    """JPEG at the best quality that stays under ``limit`` bytes (results pictures are committed)."""
    for quality in (85, 78, 70, 62, 55, 48, 40):
        image.save(path, "JPEG", quality=quality, optimize=True)
        if path.stat().st_size <= limit:
            return
    log(f"    note: {path.name} is {path.stat().st_size / 1e3:.0f} KB even at JPEG quality 40")


# ---------------------------------------------------------------------------------------------
# Report

METHOD = f"""\
## Method

- Each output of ours comes from the command line, `python -m nst_core PHOTO PAINTING -o OUT.png --size SIZE
  [config flags] [extra flags]`, in its own process; *time s* is that process' wall time (start-up and
  weight loading included).
- neural-style's row is its published image: {REFERENCE_NOTE}, resized to this run's size for scoring.
- *photo (unchanged)* scores the photo itself: the starting point (content 0, structure 1) and how far
  its style is from the painting's.
- **content** ↓ = ‖F(out) − F(photo)‖² / ‖F(photo)‖² at relu4_2 of the original VGG19 (`nst_core.load_vgg()`'s
  default, fp32), the photo resized to the output's size (PIL bicubic).
- **style** ↓ = mean over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of ‖G(out) − G(painting)‖² / ‖G(painting)‖²,
  G = F Fᵀ / (H·W), the painting resized to the output's long side.
- **structure** ↑ = Pearson correlation of the Sobel gradient magnitude of the luminance of output and photo,
  both area-downsampled to {qm.EDGE_LONG_SIDE} px on the long side (1 = the photo's edges). It uses no VGG layer,
  so an optimiser that matches relu4_2 cannot game it. At 512 px the other photo scores 0.00 against either
  photo, the paintings −0.03 to 0.21, neural-style's images 0.51–0.67.
- **new faces** ↓ = faces MTCNN finds in the output (probability ≥ {FACE_PROB}) beyond the number it finds in the
  photo at the same size (`bench/faces.py`, facenet-pytorch's weights); boxed in red on the sheets.
- The metric is written in `bench/quality_metrics.py`, not taken from `nst_core.losses`.
- Scores depend on the size (a 128 px run scores differently from a 512 px one): compare rows of one run.
"""


def pair_section(pair: str, rows: List[Dict[str, object]], sheet: Path) -> str:
    photo, painting = PAIRS[pair]
    table = []
    for r in rows:
        if "content" in r:
            table.append([r["config"], r["content"], r["style"], r["structure"], r.get("new_faces"), r["seconds"]])
        else:
            why = r["error"] if r["error"] == "not run" else f"failed: {r['error']}"
            table.append([r["config"], None, None, None, None, why])
    return (f"## {pair} ({photo} + {painting})\n\n![{pair}]({sheet.name})\n\n"
            + md_table(["config", "content ↓", "style ↓", "structure ↑", "new faces ↓", "time s"], table)
            + "\n\nObjects of the painting in the photo: none / … (to be filled in by eye from the contact sheet)\n")


def summary_section(rows: List[Dict[str, object]]) -> str:
    configs = list(dict.fromkeys(r["config"] for r in rows if "content" in r))
    table = []
    for c in configs:
        rs = [r for r in rows if r["config"] == c and "content" in r]
        mean = lambda k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
        lo_hi = lambda k: f"{min(r[k] for r in rs):.3g}–{max(r[k] for r in rs):.3g}"  # noqa: E731
        faces = [r["new_faces"] for r in rs if "new_faces" in r]
        table.append([c, len(rs), mean("content"), lo_hi("content"), mean("style"), lo_hi("style"),
                      mean("structure"), lo_hi("structure"), sum(faces) if faces else None])
    return ("## Summary over pairs\n\n"
            + md_table(["config", "pairs", "content mean", "range", "style mean", "range", "structure mean",
                        "range", "new faces"], table) + "\n")


def write_report(args, rows, skipped: Dict[str, str], sheets: Dict[str, Path], wall: float) -> None:
    settings = {"size": args.size, "extra": args.extra_list, "commit": git_commit(), "machine": machine(),
                "date": time.strftime("%Y-%m-%d %H:%M"), "skipped_configs": skipped, "wall_seconds": round(wall, 1)}
    (args.out / "results.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1, default=str))
    ours = [r for r in rows if r.get("flags")]
    reused = sum(1 for r in ours if r["reused"])
    made = len(ours) - reused
    head = [
        "# Quality: our CLI next to neural-style's published outputs\n",
        f"- size: {args.size} px on the long side; extra CLI flags: `{' '.join(args.extra_list) or 'none'}`",
        f"- repo commit: {settings['commit']}; machine: {settings['machine']}; date: {settings['date']}",
        f"- this invocation took {wall / 60:.1f} min: {made} CLI runs made, {reused} reused from an earlier one "
        f"(`--reuse`); 1-minute load average at its end {os.getloadavg()[0]:.1f} on {os.cpu_count()} logical "
        f"cores (times grow with other processes' load)",
    ]
    for config, why in skipped.items():
        head.append(f"- skipped `{config}`: {why}")
    if args.no_faces:
        head.append(f"- faces not counted: {args.no_faces}")
    parts = ["\n".join(head) + "\n", METHOD]
    for group, names in GROUPS.items():
        group_rows = [r for r in rows if r["pair"] in names]
        if group_rows:
            parts.append(summary_section(group_rows).replace("over pairs", f"over the {group} pairs", 1))
    for pair, sheet in sheets.items():
        parts.append(pair_section(pair, [r for r in rows if r["pair"] == pair], sheet))
    (args.out / "RESULTS.md").write_text("\n".join(parts))


# ---------------------------------------------------------------------------------------------

def pick(text: Optional[str], known: List[str], what: str, groups: Optional[Dict[str, List[str]]] = None) -> List[str]:
    if not text:
        return list(known)
    names = [m for n in text.split(",") if n.strip() for m in (groups or {}).get(n.strip(), [n.strip()])]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="long side of the outputs in px (neural-style's: 512)")
    p.add_argument("--pairs", help=f"comma-separated subset of {', '.join(PAIRS)}, or a group: {', '.join(GROUPS)}")
    p.add_argument("--configs", help=f"comma-separated subset of {', '.join(all_configs())}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for images, RESULTS.md, results.json")
    p.add_argument("--reuse", action="store_true", help="skip CLI runs whose PNG already exists")
    p.add_argument("--no-run", action="store_true", help="with --reuse: score what exists, run nothing")
    p.add_argument("--extra", default="", help='further CLI flags for every run, e.g. "--steps 20 --start-size 0"')
    p.add_argument("--no-faces", action="store_const", const="--no-faces given", default=None,
                   help="do not count faces (faces.py needs facenet-pytorch)")
    args = p.parse_args(argv)
    if args.size < 32:
        raise SystemExit(f"--size {args.size} is too small for VGG19's five pooling stages; use 64 or more")
    args.pairs = pick(args.pairs, list(PAIRS), "pair", GROUPS)
    args.configs = pick(args.configs, list(all_configs()), "config")
    args.extra_list = shlex.split(args.extra)
    return args


def check_inputs(pairs: List[str]) -> None:
    for pair in pairs:
        reference = [REFERENCE / f"{pair}.png"] if pair not in PEOPLE else []
        for path in [IMAGES / f for f in PAIRS[pair]] + reference:
            if not path.exists():
                raise SystemExit(f"missing {path}: this benchmark needs /work/shared/images and /work/shared/reference")


def main(argv=None) -> int:
    args = parse_args(argv)
    check_inputs(args.pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    help_text = cli_help()
    configs = {c: f for c, f in all_configs().items() if c in args.configs}
    skipped = {c: why for c, f in configs.items() if (why := unsupported_reason(f, help_text))}
    for c, why in skipped.items():
        log(f"skipping {c}: {why}")
    scorer = Scorer(faces=not args.no_faces)
    args.no_faces = args.no_faces or scorer.no_faces
    if scorer.no_faces:
        log(f"faces not counted: {scorer.no_faces}")
    rows, sheets = [], {}
    for pair in args.pairs:
        log(f"{pair}:")
        runs = {c: run_or_reuse(pair, c, f, args) for c, f in configs.items() if c not in skipped}
        pair_rows, images = score_pair(pair, runs, scorer, args.size)
        for r in pair_rows:
            log(f"    {r['config']:18s} " + (scores_text(r) if "content" in r else f"failed: {r['error']}"))
        sheets[pair] = args.out / f"{pair}.jpg"
        contact_sheet(pair, images, pair_rows, sheets[pair])
        rows += pair_rows
    write_report(args, rows, skipped, sheets, time.perf_counter() - t0)
    log(f"wrote {args.out / 'RESULTS.md'}, results.json and {len(sheets)} contact sheets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
