#!/usr/bin/env python
"""What does a tiled run hold in memory per pixel of the output, and how much of it is L-BFGS?

Measured on the CPU: the peak of live tensor bytes during a few tiled iterations (the profiler's
allocation records, summed in time order: what ``max_memory_allocated`` counts on a GPU), at two
output sizes with the same tile, fitted as ``per tile + per pixel × pixels``; the L-BFGS state's
bytes counted from the optimiser itself. Both are extrapolated to 4096 and 8192 px outputs (the
whole-image part only: a tile's pass comes on top), with the history a 12 GB card gets there (5
pairs), and what a bf16 history (and bf16 work rows) would take off.

    python bench/tiled_memory.py [--sizes 256 384] [--tile 128] [--precision fp32] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git_commit, machine, md_table  # noqa: E402

import torch  # noqa: E402

GIB = 1024 ** 3
PAIRS = 5   # default_history at 4096 px and above on a 12 GB card (a sixteenth of ~11 GiB free)


def peak_bytes(fn) -> int:
    """Peak of live tensor bytes allocated while ``fn()`` runs (from the profiler's records)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(records, key=lambda e: e.start_ns()):   # + an allocation, − a free
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def lbfgs_bytes_per_element(pairs: int) -> dict:
    """Bytes of the optimiser's full-size state per element of the image: its history and its work
    rows (counted from an optimiser of a one-element image; the m×m algebra is left out)."""
    from nst_core.lbfgs import LBFGS
    x = torch.zeros(1, 1, 1, 1)
    opt = LBFGS(x, history_size=pairs)
    tensors = [v for k, v in vars(opt).items() if isinstance(v, torch.Tensor) and k != "x"]
    history = opt.S.nbytes + opt.Y.nbytes
    return {"history": history, "work": sum(t.nbytes for t in tensors) - history}


def run_peak(model, content, style, size: int, tile: int, precision: str, steps: int) -> int:
    import nst_core as nc
    c = nc.resize(content, (size, size))
    opts = nc.Options(size=size, start_size=0, steps=steps, tile_size=tile, precision=precision, history_size=PAIRS)

    def run():
        nc.stylize(model, nc.ContentTarget(c), [nc.StyleTarget(style)], nc.LossWeights(), opts)
    return peak_bytes(run)


def square(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    s = min(h, w)
    return image[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].contiguous()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs=2, default=(256, 384))
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", default="", help="append the table to this markdown file")
    args = p.parse_args(argv)
    import nst_core as nc
    from nst_core import runtime
    model = nc.load_vgg()
    runtime.runtime_model(model, torch.device("cpu"), nc.Options(precision=args.precision))   # made before measuring
    content = square(nc.load_image(ROOT / "assets/samples/tubingen.jpg"))
    style = nc.resize_long(nc.load_image(ROOT / "assets/samples/starry_night.jpg"), args.tile)
    (s0, s1) = args.sizes
    peaks = [run_peak(model, content, style, s, args.tile, args.precision, args.steps) for s in (s0, s1)]
    per_px = (peaks[1] - peaks[0]) / (s1 * s1 - s0 * s0)
    per_tile = peaks[0] - per_px * s0 * s0
    lb = lbfgs_bytes_per_element(PAIRS)
    rows = []
    for size in (4096, 8192):
        px = size * size
        state, history, work = per_px * px, lb["history"] * 3 * px, lb["work"] * 3 * px
        rows.append([f"{size} px", f"{state / GIB:.1f}", f"{history / GIB:.1f}", f"{work / GIB:.1f}",
                     f"{(state - history / 2) / GIB:.1f}", f"{(state - (history + work) / 2) / GIB:.1f}"])
    text = (f"### {args.precision}, measured at {s0} and {s1} px in {args.tile} px tiles, commit {git_commit()}\n\n"
            f"Peak live tensor bytes: {peaks[0] / 2 ** 20:.0f} MiB at {s0} px, {peaks[1] / 2 ** 20:.0f} MiB at {s1} px: "
            f"{per_px:.0f} bytes per output pixel (the whole-image state: image, gradient, content target, "
            f"L-BFGS) plus {per_tile / 2 ** 20:.0f} MiB that does not grow with the output (one {args.tile} px "
            f"tile's pass, the targets). L-BFGS alone: {lb['history'] * 3} bytes per "
            f"pixel of history ({PAIRS} pairs, fp32) and {lb['work'] * 3} of work rows. A larger tile's pass "
            f"comes on top of the whole-image state below.\n\n"
            + md_table(["output", "whole-image state GiB", "of it L-BFGS history GiB", "L-BFGS work rows GiB",
                        "state with a bf16 history GiB", "… and bf16 work rows GiB"], rows)
            + f"\n{machine()}\n")
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
