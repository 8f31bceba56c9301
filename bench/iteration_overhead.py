#!/usr/bin/env python
"""Seconds per iteration of our loop against a bare VGG forward+backward, and their ratio.

(a) ours: ``nst_core.stylize`` at one scale (``start_size = size``), L-BFGS, default layers and
    weights; per-iteration time read from the StepInfo callback timestamps after the warm-up.
(b) bare: the frozen VGG's forward to the same deepest layer (relu5_1 with the default layers) and
    the backward to an image that requires grad, same precision and memory format as (a).

(a) and (b) run in the same process, interleaved: after each of our iterations the callback runs
one bare pass; its time is excluded from (a). Same threads, same caches, same machine state.
Target on CPU: ratio (a)/(b) <= 1.10.

Each finished size is stored under --state, so a rerun skips it (use --fresh to measure again).

    python bench/iteration_overhead.py                       # 256 and 512 px, auto + fp32, ~5 min on 2 quiet cores
    python bench/iteration_overhead.py --sizes 64,96 --iters 5 --warmup 2    # smoke run
    python bench/iteration_overhead.py --device cuda --out bench/results/overhead_cuda.md
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import (DEFAULT_CONTENT, DEFAULT_STYLE, Cache, Clock, fmt_duration, log, machine_info,  # noqa: E402
                            machine_md, md_table, set_threads, sync)


def precision_label(device, precision: str) -> str:
    from nst_core import transfer as tr
    p = tr.resolve_precision(device, precision)
    fmt = "channels_last" if tr.memory_format_for(device, "auto") is not None else "NCHW"
    return p + f", {fmt}" + (" (automatic)" if precision == "auto" else "")


def deepest_layer(model, layers) -> str:
    return max(layers, key=lambda n: model.index[n])


def measure_size(model, size: int, iters: int, warmup: int, device, content, style, history: int,
                 precision: str = "auto") -> dict:
    import torch
    import nst_core as nc
    from nst_core import transfer as tr

    opts = nc.Options(size=size, start_size=size, steps=warmup + iters, optimizer="lbfgs", history_size=history,
                      precision=precision)
    (hw, _), = nc.plan_scales(tuple(content.shape[-2:]), opts)
    layers = set(nc.DEFAULT_CONTENT_LAYERS) | set(nc.DEFAULT_STYLE_LAYERS)
    deepest = deepest_layer(model, layers)
    # The bare pass runs what our loop runs: the same memory format and the same runtime model
    # (a bf16 copy with its weights cast once, where bf16 is the setting).
    memory_format = tr.memory_format_for(device, opts.channels_last)
    bare_model = tr.runtime_model(model, device, opts)
    bare_x = nc.resize(content.to(device), hw).clone().requires_grad_(True)

    def bare_pass():
        x = bare_x if memory_format is None else bare_x.contiguous(memory_format=memory_format)
        y = bare_model(x, [deepest])[deepest]
        (g,) = torch.autograd.grad(y.float().sum(), bare_x)
        return g

    clock = Clock(device)
    a_spans, b_spans = [], []   # (start mark, end mark)
    state = {"start": None, "t0": time.perf_counter()}
    total = warmup + iters

    def callback(info):
        end = clock.mark()
        if state["start"] is not None:
            a_spans.append((state["start"], end))
        b0 = clock.mark()
        bare_pass()
        b1 = clock.mark()
        b_spans.append((b0, b1))
        if not clock.cuda:   # live progress (on CUDA the numbers are only known at the end)
            a = clock.between(*a_spans[-1]) if a_spans else float("nan")
            b = clock.between(b0, b1)
            elapsed = time.perf_counter() - state["t0"]
            eta = elapsed / info.iteration * (total - info.iteration)
            tag = "warm-up" if info.iteration <= warmup else "measure"
            log(f"  {size}px it {info.iteration:>3}/{total} [{tag}]  ours {a:.4f} s  bare {b:.4f} s   "
                f"ETA {fmt_duration(eta)}")
        state["start"] = clock.mark()
        return False

    torch.manual_seed(0)
    history_used = history or tr.default_history(3 * hw[0] * hw[1], device)
    nc.stylize(model, nc.ContentTarget(content.to(device)), [nc.StyleTarget(style.to(device))],
               nc.LossWeights(), opts, callback=callback)
    clock.finish()
    # a_spans[i] is iteration i+2 (the first iteration has no preceding callback); b_spans[i] follows iteration i+1.
    a_it = [(k + 2, clock.between(*s)) for k, s in enumerate(a_spans) if k + 2 > warmup]
    b_it = [(k + 1, clock.between(*s)) for k, s in enumerate(b_spans) if k + 1 > warmup]
    a, b = [v for _, v in a_it], [v for _, v in b_it]
    # At iteration i the L-BFGS history holds min(i - 1, m) pairs: its cost is steady from i = m + 1.
    full_from = history_used + 1
    a_full = [v for i, v in a_it if i >= full_from]
    b_full = [v for i, v in b_it if i >= full_from]
    steady = {}
    if len(a_full) >= 3:
        steady = {"ours_full_history_s": statistics.mean(a_full), "bare_full_history_s": statistics.mean(b_full),
                  "ratio_full_history": statistics.mean(a_full) / statistics.mean(b_full),
                  "full_history_iters": len(a_full)}
    return {**steady,
        "size": size, "hw": list(hw), "deepest": deepest, "iters": len(a),
        "ours_s": statistics.mean(a), "bare_s": statistics.mean(b),
        "ours_median_s": statistics.median(a), "bare_median_s": statistics.median(b),
        "ratio": statistics.mean(a) / statistics.mean(b),
        "ratio_median": statistics.median(a) / statistics.median(b),
        "history": history_used, "history_full_from_iteration": full_from,
        "precision": precision_label(device, opts.precision), "ours_all": a, "bare_all": b,
    }


def estimate(model, device, sizes, args, content) -> float:
    import torch
    x = torch.rand(1, 3, 96, 128, device=device, requires_grad=True)
    best = float("inf")
    for _ in range(3):
        sync(device)
        t = time.perf_counter()
        torch.autograd.grad(model(x, ["relu5_1"])["relu5_1"].sum(), x)
        sync(device)
        best = min(best, time.perf_counter() - t)
    h, w = content.shape[-2:]
    total = 0.0
    for s in sizes:
        k = s / max(h, w)
        total += (args.warmup + args.iters) * 2.1 * best * (round(h * k) * round(w * k)) / (96 * 128) + 5
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="256,512", help="comma-separated long sides in px")
    p.add_argument("--iters", type=int, default=60,
                   help="measured iterations per size (our L-BFGS history, 20 pairs by default, is full from iteration 21)")
    p.add_argument("--warmup", type=int, default=5, help="iterations before measuring (not counted)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--history", type=int, default=0, help="L-BFGS history (0: our memory-aware default)")
    p.add_argument("--precisions", default="auto,fp32",
                   help="comma-separated: auto (the default fast path: bf16 on CUDA and on CPUs with AMX), fp32, bf16")
    p.add_argument("--content", default=str(DEFAULT_CONTENT))
    p.add_argument("--style", default=str(DEFAULT_STYLE))
    p.add_argument("--out", default=None, help="also write the markdown table to this file")
    p.add_argument("--state", default=str(Path(__file__).resolve().parent / "results" / "state"),
                   help="folder of finished measurements (restart skips them)")
    p.add_argument("--fresh", action="store_true", help="ignore finished measurements and measure again")
    args = p.parse_args(argv)
    if args.iters < 2 or args.warmup < 1:
        p.error("use --iters >= 2 and --warmup >= 1")

    import torch
    import nst_core as nc
    set_threads(args.threads)
    device = torch.device(args.device)
    info = machine_info(args.device, args.threads)
    log("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    cache = Cache(args.state, args.fresh)
    model = nc.load_vgg(device=device)
    content, style = nc.load_image(args.content), nc.load_image(args.style)
    log(f"estimated duration: about {fmt_duration(estimate(model, device, sizes, args, content))} "
        "(2 passes per iteration, scaled by pixels from a 128 px calibration)")
    rows, results = [], []
    for precision, size in [(p, z) for p in precisions for z in sizes]:
        config = {"size": size, "iters": args.iters, "warmup": args.warmup, "threads": torch.get_num_threads(),
                  "device": str(device), "history": args.history, "content": args.content, "style": args.style,
                  "cpu": info["cpu"], "torch": info["torch"], "commit": info["commit"],
                  "precision": precision}
        res = cache.get(f"overhead_{size}_{device.type}_{precision}", config)
        if res is not None:
            log(f"{size}px: reusing the finished measurement in {args.state} (--fresh to redo)")
        else:
            log(f"{size}px: {args.warmup} warm-up + {args.iters} measured iterations, interleaved with bare passes")
            t0 = time.perf_counter()
            res = measure_size(model, size, args.iters, args.warmup, device, content, style, args.history,
                               precision)
            res["wall_s"] = time.perf_counter() - t0
            cache.put(f"overhead_{size}_{device.type}_{precision}", config, res)
        results.append(res)
        if "ratio_full_history" in res:
            note = (f"; with a full L-BFGS history ({res['full_history_iters']} its from iteration "
                    f"{res['history_full_from_iteration']}): ours {res['ours_full_history_s']:.4f}, "
                    f"bare {res['bare_full_history_s']:.4f}, ratio {res['ratio_full_history']:.3f}")
        else:
            note = (f" (the L-BFGS history of {res['history']} pairs is full only from iteration "
                    f"{res['history_full_from_iteration']}: raise --iters for the steady state)")
        log(f"{size}px ({res['hw'][1]}×{res['hw'][0]}): ours {res['ours_s']:.4f} s/it, bare {res['bare_s']:.4f} s/it, "
            f"ratio {res['ratio']:.3f} (medians {res['ratio_median']:.3f}){note}")
        rows.append([res["precision"], f"{size} ({res['hw'][1]}×{res['hw'][0]})", res["ours_s"], res["bare_s"], f"{res['ratio']:.3f}",
                     f"{res['ratio_median']:.3f}", res["iters"],
                     f"{res['ratio_full_history']:.3f} ({res['full_history_iters']} its)" if "ratio_full_history" in res
                     else "–", res["history"]])
    table = md_table(["precision, memory format", "size px (W×H)", "ours s/it (a)", f"bare VGG fwd+bwd to {results[0]['deepest']} s/it (b)",
                      "ratio (a)/(b)", "ratio of medians", "measured its", "ratio, full L-BFGS history",
                      "L-BFGS history"], rows)
    verdict = ""
    if device.type == "cpu":
        lines = []
        for label in dict.fromkeys(r["precision"] for r in results):
            rs = [r for r in results if r["precision"] == label]
            worst = max(max(r["ratio"], r.get("ratio_full_history", 0.0)) for r in rs)
            lines.append(f"- {label}: {'met' if worst <= 1.10 else 'NOT met'} (worst {worst:.3f}, counting the "
                         "full-history ratio where measured)")
        verdict = "\nTarget on CPU: ratio <= 1.10\n\n" + "\n".join(lines)
    text = (f"## Iteration overhead: our loop vs a bare VGG forward+backward\n\n{machine_md(info)}\n\n{table}\n"
            f"{verdict}\n\n(a) nst_core.stylize, one scale, L-BFGS, default layers/weights, time between "
            f"StepInfo callbacks after {args.warmup} warm-up iteration(s); (b) the same frozen VGG, forward to the "
            f"deepest default layer and backward to the image, with the same precision and memory format, "
            f"interleaved one-for-one with (a) in the same process.\n")
    print()
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
