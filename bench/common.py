"""What the benchmarks share: the machine they ran on, a command line run with its peak memory,
a markdown table, a video clip read with OpenCV."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # the scripts run as files from bench/: nst_core is one folder up
    sys.path.append(str(ROOT))


def scratch(name: str) -> Path:
    """Where a benchmark writes unless told otherwise: a temporary folder, never the committed
    results (pass ``--out bench/results/<name>`` to update those)."""
    return Path(tempfile.gettempdir()) / "nst-bench" / name


def log(msg: str) -> None:
    print(msg, flush=True)


def git_commit() -> str:
    """The checkout's commit, marked where nst_core has uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        return git("rev-parse", "--short", "HEAD") + (" (nst_core modified)" if git("status", "--porcelain", "--", "nst_core") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def nst_core_sha256(root: Path = ROOT) -> str:
    """sha256 over the bytes of nst_core's Python files, concatenated in sorted path order: the files
    ``git ls-files 'nst_core/*.py'`` lists, or where the tree is no git checkout (a copied working
    tree) every ``nst_core/**/*.py``. It names the code measured where a commit cannot."""
    import hashlib
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "nst_core/*.py"], capture_output=True, text=True,
                             timeout=10)
        paths = out.stdout.split() if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        paths = []
    if not paths:
        paths = [p.relative_to(root).as_posix() for p in (root / "nst_core").rglob("*.py")]
    digest = hashlib.sha256()
    for rel in sorted(paths):
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()


def machine() -> str:
    """CPU model, cores and torch version in one line (the GPU's name where one is used)."""
    import torch
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}"


def run_cli(args: Sequence[str]) -> Dict[str, object]:
    """``python -m nst_core ARGS`` in its own process: exit code, wall time, peak RSS (MiB), output tail."""
    cmd = [sys.executable, "-m", "nst_core", *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)   # this child's own rusage: its peak RSS alone
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - t0, "peak_mib": usage.ru_maxrss / 1024,
            "tail": out.strip().splitlines()[-3:]}


def md_table(header: Sequence[str], rows: List[Sequence[object]]) -> str:
    def cell(v):
        return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def opencv_clip(path: Path, first: int, n: int, size: int = 0):
    """Frames ``first`` … ``first + n - 1`` of a video as ``[n, 3, H, W]`` RGB 0..1 (long side ``size``
    px; 0: as they are) and its frame rate, read with OpenCV: the bare GPU machine has no PyAV."""
    import cv2
    import torch
    import nst_core
    cap, frames = cv2.VideoCapture(str(path)), []
    fps = cap.get(cv2.CAP_PROP_FPS) or 24.0
    while len(frames) < first + n:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float().div(255)[None]
        frames.append(nst_core.resize_long(rgb, size) if size else rgb)
    cap.release()
    if len(frames) <= first:
        raise RuntimeError(f"OpenCV read {len(frames)} frames of {path}; frame {first + 1} on were asked for")
    return torch.cat(frames[first:first + n]), float(fps)
