"""Photorealistic style transfer: what it costs and what it does.

``python bench/photoreal.py laplacian`` — build time, memory and non-zeros of the matting Laplacian
at 512×512 px, and the time of the loss term (forward + backward), each build in a fresh process.

``python bench/photoreal.py transfer`` — photo pairs (content photo, style photo), each stylised by
plain Gatys (default layers and weights), by the photorealistic mode's settings without the term
(photoreal = 0: what the layers and content weight alone do), and by the mode (before and after the
final smoothing), at the same size, schedule and steps. Writes a contact sheet and, per output, two
numbers:

- structure kept: Pearson correlation of the Sobel gradient magnitudes of the output's and the
  content's luminance (1 = the photo's edges exactly, in place and in strength);
- colour moved: ``1 − W(out, style) / W(content, style)``, W the 2-Wasserstein distance between the
  Gaussians (mean, covariance) of the images' CIELAB colours: 0 = the content's colour statistics,
  1 = the style photo's (negative: further from the style than the content was).

Results go to ``bench/results/photoreal/`` (``--out``); finished runs (PNG + ``times.json``) are
reused on the next call unless ``--fresh``. Defaults are small (256 px, 60 steps, one thread) because
the CPU is shared; about 1 min per run on a quiet core.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nst_core  # noqa: E402
from nst_core import photoreal  # noqa: E402
from bench.common import scratch  # noqa: E402

SAMPLES = ROOT / "assets" / "samples"


# ---------------------------------------------------------------------------------------------
# The Laplacian's cost

def measure_build(size: int, threads: int) -> dict:
    """One build of the Laplacian of tubingen at size×size px, in this process (call it in a fresh one)."""
    torch.set_num_threads(threads)
    img = nst_core.resize(nst_core.load_image(SAMPLES / "tubingen.jpg"), (size, size))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    lap = photoreal.matting_laplacian(img)
    build = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    term = photoreal.LaplacianTerm(lap)
    x = img.clone().requires_grad_(True)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        (g,) = torch.autograd.grad(term(x), x)
        times.append(time.perf_counter() - t0)
    return {"size": size, "build_s": build, "peak_rss_growth_mb": (rss1 - rss0) / 1024,
            "bands_mb": lap.bands.numel() * lap.bands.element_size() / 2 ** 20, "nnz": lap.nnz(),
            "term_fwd_bwd_ms": 1000 * statistics.median(times)}


def laplacian_report(args) -> None:
    runs = []
    for i in range(args.repeats):
        cmd = [sys.executable, __file__, "_build", "--size", str(args.size), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f"build {i + 1}/{args.repeats}: {runs[-1]}", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("build_s", "peak_rss_growth_mb", "term_fwd_bwd_ms")}
    nnz, bands = runs[0]["nnz"], runs[0]["bands_mb"]
    n = args.size * args.size
    csr_mb = (nnz * (4 + 8) + (n + 1) * 8) / 2 ** 20    # fp32 values, int64 column indices and row pointers
    lines = [
        f"# Matting Laplacian at {args.size}×{args.size} px (tubingen), CPU, {args.threads} thread(s)",
        "",
        f"{machine()}; {args.repeats} builds, each in a fresh process; medians.",
        "",
        "| what | value |", "|---|---|",
        f"| non-zeros | {nnz:,} ({nnz / n:.1f} per pixel) |",
        f"| build time (float64, vectorised over windows in chunks) | {med['build_s']:.2f} s |",
        f"| peak RSS growth during the build | {med['peak_rss_growth_mb']:.0f} MB |",
        f"| stored (25 diagonals, fp32) | {bands:.0f} MB |",
        f"| same matrix as CSR (fp32 values, int64 indices), for comparison | {csr_mb:.0f} MB |",
        f"| loss term forward + backward (one M·v of 3 channels) | {med['term_fwd_bwd_ms']:.1f} ms |",
        "", "Builds: " + "; ".join(f"{r['build_s']:.2f} s / {r['peak_rss_growth_mb']:.0f} MB" for r in runs),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"laplacian_{args.size}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{model}, torch {torch.__version__}, load average {load} (other processes share the cores)"


# ---------------------------------------------------------------------------------------------
# The metrics

def luminance(img: torch.Tensor) -> np.ndarray:
    x = img[0].double().numpy()
    return 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def sobel_magnitude(lum: np.ndarray) -> np.ndarray:
    import cv2
    gx = cv2.Sobel(lum, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(lum, cv2.CV_64F, 0, 1, ksize=3)
    return np.hypot(gx, gy)


def structure_kept(out: torch.Tensor, content: torch.Tensor) -> float:
    """Pearson correlation of the Sobel magnitude maps of the luminances (same size)."""
    a, b = sobel_magnitude(luminance(out)).ravel(), sobel_magnitude(luminance(content)).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def lab_gaussian(img: torch.Tensor):
    import cv2
    rgb = img[0].permute(1, 2, 0).float().clamp(0, 1).numpy()
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    return lab.mean(0), np.cov(lab, rowvar=False)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def w2(g1, g2) -> float:
    """2-Wasserstein distance between two Gaussians (mean, covariance)."""
    (m1, c1), (m2, c2) = g1, g2
    r2 = _sqrtm(c2)
    cross = _sqrtm(r2 @ c1 @ r2)
    return float(np.sqrt(max(0.0, np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * cross))))


def colour_moved(out: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> float:
    s = lab_gaussian(style)
    return 1.0 - w2(lab_gaussian(out), s) / w2(lab_gaussian(content), s)


# ---------------------------------------------------------------------------------------------
# The transfers

def crop(img: torch.Tensor, box) -> torch.Tensor:
    """``box`` = (left, top, right, bottom) as fractions of the image."""
    h, w = img.shape[-2:]
    l, t, r, b = box
    return img[..., int(t * h):int(b * h), int(l * w):int(r * w)].contiguous()


def pairs():
    """(name, content photo, style photo): the two sample photos both ways, and two photos cut from them
    (Tübingen's houses close up; the bay, hills and evening sky beside the bridge)."""
    tub = nst_core.load_image(SAMPLES / "tubingen.jpg")
    gg = nst_core.load_image(SAMPLES / "golden_gate.jpg")
    houses = crop(tub, (0.55, 0.15, 1.0, 0.75))
    bay = crop(gg, (0.3, 0.0, 1.0, 0.62))
    return [("tubingen <- golden_gate", tub, gg), ("golden_gate <- tubingen", gg, tub),
            ("houses <- bay", houses, bay)]


KINDS = {   # kind: (label, photorealistic settings?, photoreal weight from the settings?)
    "plain": ("plain Gatys", False, False),
    "shallow": ("mode without the term", True, False),
    "photoreal": ("photoreal term only", True, True),
}


def run(model, content, style, size, steps, kind: str, threads: int):
    """One stylisation; ``kind`` as in ``KINDS``. Returns (image, seconds)."""
    torch.set_num_threads(threads)
    _, mode, term = KINDS[kind]
    opts = nst_core.Options(size=size, start_size=size, steps=steps)
    if mode:
        s = photoreal.photorealistic_settings()
        weights = nst_core.LossWeights(content=s.content, photoreal=s.photoreal if term else 0.0)
        target = nst_core.StyleTarget(style, layers=dict(s.style_layers))
        opts.init, opts.color = s.init, s.color
    else:
        weights, target = nst_core.LossWeights(), nst_core.StyleTarget(style)
    t0 = time.perf_counter()
    res = nst_core.stylize(model, nst_core.ContentTarget(content), [target], weights, opts)
    return res.image, time.perf_counter() - t0


def cached_run(args, model, stem, content, style, kind):
    """A finished run's PNG and time are kept in ``--out`` and reused (``--fresh`` runs it again)."""
    path = args.out / f"{stem}_{kind}.png"
    times_path = args.out / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    key = f"{stem}_{kind}_{args.size}px_{args.steps}steps"
    if not args.fresh and path.is_file() and key in times:
        return nst_core.load_image(path), times[key]
    img, secs = run(model, content, style, args.size, args.steps, kind, args.threads)
    nst_core.save_image(img, path, overwrite=True)
    times[key] = secs
    times_path.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    return img, secs


def transfer_report(args) -> None:
    from PIL import Image, ImageDraw
    args.out.mkdir(parents=True, exist_ok=True)
    model = nst_core.load_vgg()
    settings = photoreal.photorealistic_settings()
    rows, table = [], []
    for name, content_full, style_full in pairs():
        content = nst_core.resize_long(content_full, args.size)
        style = nst_core.resize_long(style_full, args.size)
        stem = name.split(" ")[0] + "_" + name.split(" ")[-1]
        outputs = []
        for kind, (label, _, _) in KINDS.items():
            img, secs = cached_run(args, model, stem, content, style, kind)
            outputs.append((label, img, secs))
        smoothed = photoreal.smooth(outputs[-1][1], content, settings.smooth_radius, settings.smooth_eps)
        nst_core.save_image(smoothed, args.out / f"{stem}_photorealistic.png", overwrite=True)
        outputs.append(("photorealistic (+ smoothing)", smoothed, outputs[-1][2]))
        cells = [("content", content, ""), ("style photo", style, "")]
        for label, img, secs in outputs:
            s_k, c_m = structure_kept(img, content), colour_moved(img, content, style)
            table.append((name, label, s_k, c_m, secs))
            cells.append((label, img, f"structure {s_k:.2f}  colour {c_m:.2f}"))
            print(f"{name:26s} {label:30s} structure {s_k:.3f} colour moved {c_m:.3f} ({secs:.0f} s)", flush=True)
        rows.append(cells)
    tile, pad, text_h = args.size, 6, 30
    sheet = Image.new("RGB", (len(rows[0]) * (tile + pad) + pad, len(rows) * (tile + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, cells in enumerate(rows):
        for c, (label, img, note) in enumerate(cells):
            pil = nst_core.to_pil(nst_core.resize_long(img, tile))
            x, y = pad + c * (tile + pad), pad + r * (tile + text_h + pad)
            sheet.paste(pil, (x, y))
            draw.text((x, y + pil.height + 2), label, fill="black")
            draw.text((x, y + pil.height + 15), note, fill="black")
    sheet.save(args.out / "contact_sheet.png")
    lines = [f"# Photorealistic transfer: {args.size} px, {args.steps} L-BFGS steps at one scale, CPU "
             f"({args.threads} thread(s))", "", machine(), "",
             f"Settings (photorealistic_settings()): {settings}", "",
             "plain Gatys = default layers and weights; mode without the term = the photorealistic settings "
             "with photoreal = 0 (shallow layers, content 10); photoreal term only = the settings, before the "
             "final smoothing.", "",
             "structure kept = correlation of Sobel magnitude maps with the content's (1 = its edges); "
             "colour moved = 1 − W2(out, style)/W2(content, style) of Lab Gaussians (0 = content's, 1 = style's). "
             "Times are wall clock on a shared, loaded machine: compare them only roughly.",
             "", "| pair | output | structure kept | colour moved | time |", "|---|---|---|---|---|"]
    lines += [f"| {p} | {o} | {s:.3f} | {c:.3f} | {t:.0f} s |" for p, o, s, c, t in table]
    (args.out / "transfer.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'transfer.md'} and contact_sheet.png")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("laplacian", "transfer", "_build"))
    p.add_argument("--size", type=int, default=None, help="512 for laplacian, 256 for transfer")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=scratch("photoreal"),
                   help="results folder (bench/results/photoreal to update the committed ones)")
    p.add_argument("--fresh", action="store_true", help="transfer: run again what --out already holds")
    args = p.parse_args(argv)
    if args.what == "_build":
        print(json.dumps(measure_build(args.size, args.threads)))
    elif args.what == "laplacian":
        args.size = args.size or 512
        laplacian_report(args)
    else:
        args.size = args.size or 256
        transfer_report(args)


if __name__ == "__main__":
    main()
