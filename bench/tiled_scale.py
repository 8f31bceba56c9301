#!/usr/bin/env python
"""Large outputs: wall time and peak memory of the command line, untiled and in tiles.

Each run is ``python -m nst_core CONTENT STYLE -s SIZE [--tile-size T]`` with every other setting
at its default (coarse-to-fine from 256 px, automatic precision), in its own process, so its peak
memory is its own: the process' RSS high-water mark (VmHWM, read at exit) on the CPU, or
``torch.cuda.max_memory_allocated`` on CUDA. A 64 px run of one iteration gives the memory of
torch, the model and the images alone (*load*), so *above load* is what the run itself needed.

It writes a markdown table, a 1024 px JPEG of each output and a 512 px crop of it at full
resolution (to look at the brushwork and at the tile borders). Finished runs are kept under
--state and reused (``--fresh`` measures again).

    python bench/tiled_scale.py                                     # 1024, 2048 untiled and tiled, 4096 tiled: ~50 min on 2 CPU cores
    python bench/tiled_scale.py --runs 256:0 256:128 --out /tmp/t  # smoke run, ~1 min
    python bench/tiled_scale.py --device cuda --runs 2048:0 4096:1024 8192:1024
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import (DEFAULT_CONTENT, DEFAULT_STYLE, Cache, fmt_duration, log, machine_info,  # noqa: E402
                            machine_md, md_table, module_cmd, stream, thread_env)

def run_cli(args, out_png: Path, extra, env) -> dict:
    cmd = module_cmd("nst_core", [str(args.content), str(args.style), "-o", str(out_png), "--quiet",
                                  "--device", args.device] + list(extra))
    log("  $ python -m nst_core " + " ".join(cmd[3:]))
    t0 = time.perf_counter()
    rc, result, lines = stream(cmd, env, prefix="    ")
    wall = time.perf_counter() - t0
    if rc != 0 or result is None:
        raise SystemExit(f"the run failed (exit {rc}):\n" + "\n".join(lines[-20:]))
    result["wall_s"] = wall
    return result


def peak(res: dict) -> float:
    return res.get("cuda_max_allocated_mib", res["peak_rss_mib"])


def save_views(png: Path, stem: Path) -> None:
    from PIL import Image
    im = Image.open(png).convert("RGB")
    w, h = im.size
    small = im.copy()
    small.thumbnail((1024, 1024), Image.LANCZOS)
    small.save(stem.with_name(stem.name + ".jpg"), "JPEG", quality=85)
    c = min(512, w, h)   # a crop at full resolution, centred
    im.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)).save(
        stem.with_name(stem.name + "_crop.jpg"), "JPEG", quality=90)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=["1024:0", "1024:512", "2048:0", "2048:512", "4096:512"],
                   help="SIZE:TILE entries (TILE 0: untiled)")
    p.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    p.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("--state", type=Path, default=None, help="default: OUT/state")
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    cache = Cache(args.state or args.out / "state", fresh=args.fresh)
    env = thread_env(args.threads)
    info = machine_info(args.device, args.threads)
    views = args.out / "tiled"
    views.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="nst_tiled_"))

    def measure(name, config, extra):
        res = cache.get(name, config)
        if res is None:
            log(f"{name}:")
            png = tmp / f"{name}.png"
            res = run_cli(args, png, extra, env)
            if config.get("views"):
                save_views(png, views / name)
            png.unlink(missing_ok=True)
            cache.put(name, config, res)
        log(f"  {name}: {fmt_duration(res['wall_s'])}, peak {peak(res):.0f} MiB")
        return res

    key = {"device": args.device, "threads": args.threads, "content": str(args.content), "style": str(args.style),
           "commit": info["commit"]}
    load = measure(f"tiled_load_{args.device}", dict(key, size=64), ["-s", "64", "--start-size", "0", "--steps", "1"])
    import nst_core
    from nst_core import transfer as tr
    content_hw = tuple(nst_core.load_image(args.content).shape[-2:])
    rows = []
    for entry in args.runs:
        size, tile = (int(v) for v in entry.split(":"))
        name = f"tiled_{size}_{tile}_{args.device}".replace(":", "")
        res = measure(name, dict(key, size=size, tile=tile, views=True),
                      ["-s", str(size)] + (["--tile-size", str(tile)] if tile else []))
        opts = nst_core.Options(size=size, tile_size=tile)
        plan = nst_core.plan_scales(content_hw, opts)
        (h, w), _ = plan[-1]
        tiles = (f"{tile} px: {tr._n_tiles(opts, (h, w))} at the last scale, "
                 f"{sum(tr._n_tiles(opts, hw) * n for hw, n in plan)} tile iterations" if tile else "untiled")
        rows.append([f"{w}×{h}", f"{len(plan)} ({', '.join(str(max(hw)) for hw, _ in plan)})", tiles,
                     fmt_duration(res["wall_s"]),
                     f"{peak(res):.0f}", f"{peak(res) - peak(load):.0f}",
                     f"[image](tiled/{name}.jpg), [crop](tiled/{name}_crop.jpg)"])
    mem = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS"
    text = ["## Large outputs: time and memory, untiled and in tiles", "", machine_md(info), "",
            md_table(["output px", "scales (long side px)", "tiles", "wall time", f"{mem} MiB", "above load MiB", "output"], rows), "",
            f"Load (torch, the model, the images; a 64 px run of one iteration): {peak(load):.0f} MiB. "
            "Every run: `python -m nst_core tubingen.jpg starry_night.jpg -s SIZE [--tile-size T]`, all other "
            "settings default (256 px start, coarse-to-fine, automatic precision); wall time includes start-up "
            "and saving the PNG.", ""]
    out = args.out / "tiled_scale.md"
    out.write_text("\n".join(text))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
