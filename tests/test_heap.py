"""keep_heap: during a CPU run freed memory stays in the process, so iterations stop faulting
pages in; afterwards glibc's behaviour is back (large blocks are returned to the system)."""
import functools

import pytest
import torch

import nst_core
from nst_core import heap
from nst_core.transfer import StylizeError

pytestmark = pytest.mark.skipif(not heap.available(), reason="keep_heap works with glibc (Linux) only")


def _run_fresh(script: str) -> dict:
    """Run ``script`` in a fresh Python process (with the repo and tests/ importable) and return
    the JSON object it prints last."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    here = Path(__file__).resolve().parent
    code = "import sys; sys.path[:0] = [%r, %r]\n" % (str(here.parent), str(here)) + script
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Run in a fresh process: how often glibc's defaults fault pages in depends on the heap's history
# (a long test session leaves free chunks that large blocks then reuse; in a fresh process, blocks
# below 32 MB are often reused too, so the run is large enough for blocks above that).
_FAULTS_SCRIPT = r"""
import json, resource, statistics, sys
import nst_core
from testlib import shared_image
content, style = shared_image("tubingen.jpg", 640), shared_image("starry_night.jpg", 320)
vgg = nst_core.load_vgg()
out = {}
for setting in ("off", "on"):
    marks = []
    # Two L-BFGS pairs: the history's pages are all written by iteration 3 (each new pair touches
    # fresh pages of its preallocated buffers, which would count here).
    opts = nst_core.Options(size=640, start_size=640, steps=13, history_size=2, keep_heap=setting)
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts,
                     callback=lambda info: marks.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt))
    out[setting] = statistics.median(b - a for a, b in zip(marks[3:], marks[4:]))   # iterations 5-13
print(json.dumps(out))
"""


def test_iterations_stop_faulting_pages_in():
    faults = _run_fresh(_FAULTS_SCRIPT)
    # 640×480 px: relu1_1 alone is 39 MB in bf16 (79 MB in fp32), above the largest block glibc
    # serves from its heap by default (32 MB), so it is mapped afresh, page by page, every iteration:
    # 9600 pages for that block alone (since the banded pooling, b9fa8ef, about all that faults).
    pages = 64 * 480 * 640 * 2 // 4096
    assert faults["off"] > 0.9 * pages, faults
    assert faults["on"] < 0.05 * faults["off"], faults


@functools.lru_cache(maxsize=None)
def _probes() -> dict:
    """The refault counts of heap_probes.measure(), from one fresh process shared by the tests below."""
    return _run_fresh("import json, heap_probes\nprint(json.dumps(heap_probes.measure()))")


def test_defaults_are_restored_after_a_run():
    m = _probes()
    assert m["kept"] < 500, m            # served again from the kept heap
    assert m["after"] > 10000, m         # mapped afresh: glibc's default; 64 MB is 16,384 pages of 4 KiB


def test_nested_uses_restore_only_at_the_outermost():
    m = _probes()
    assert m["inner_left"] < 500, m     # the outer block is still open: memory is still kept


def test_unknown_setting_is_refused(vgg, content96, style96):
    with pytest.raises(StylizeError, match="keep_heap"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=64, keep_heap="yes"))


def test_auto_keeps_the_heap_in_the_main_thread_only():
    m = _probes()
    assert m["auto_main"] < 500, m                 # kept: the block is reused
    assert m["auto_worker"] is not None and m["auto_worker"] > 10000, m   # a worker thread (ComfyUI's case): glibc's defaults
    # The decision itself: a block over 64 MB in a worker thread is mapped afresh even in a kept
    # heap (a thread's arena cannot hold it), so the refault count alone would not show it.
    import threading
    from nst_core.transfer import _keep_heap
    cpu, plan = torch.device("cpu"), [((48, 64), 1)]
    opts = nst_core.Options(size=64, keep_heap="auto")
    assert _keep_heap(opts, cpu, plan)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(_keep_heap(opts, cpu, plan)))
    worker.start()
    worker.join()
    assert seen == [False]


def test_auto_returns_the_heap_when_memory_is_short():
    # The kept heap costs memory (its fragmentation): auto keeps it only where the estimate for the
    # run fits in half the available memory. With only 12 MB free (heap_probes pretends so) the 64 px
    # run's estimate (4.6 MB in bf16, 9.2 MB in fp32) fits, so it runs, but kept (×1.5) not in half of that.
    assert _probes()["auto_short"] > 10000, _probes()
    assert heap.fits(1024 * 768, True, avail=16 << 30)         # 1024 px in bf16 on a 16 GB machine
    assert not heap.fits(4096 * 3072, True, avail=16 << 30)    # 4096 px untiled there: too much


_RETURNED_SCRIPT = r"""
import json, threading
import nst_core
from testlib import shared_image

def status():
    d = dict(l.split(":", 1) for l in open("/proc/self/status") if l.startswith(("VmRSS", "VmHWM")))
    return {k: int(v.split()[0]) // 1024 for k, v in d.items()}

content, style = shared_image("tubingen.jpg", 512), shared_image("starry_night.jpg", 320)
vgg = nst_core.load_vgg()
out = {"before": status()["VmRSS"]}

def job():   # as ComfyUI runs a prompt: on a worker thread, where auto keeps glibc's defaults
    opts = nst_core.Options(size=512, start_size=0, steps=4)
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts)
    out["after"], out["peak"] = status()["VmRSS"], status()["VmHWM"]

t = threading.Thread(target=job)
t.start()
t.join()
print(json.dumps(out))
"""


def test_a_run_on_a_worker_thread_hands_its_memory_back():
    """glibc's arenas keep most of what a run freed (measured at 512 px: RSS 400 MB above what it
    was before the run); the next ComfyUI node should get that memory, so a run ends by trimming."""
    m = _run_fresh(_RETURNED_SCRIPT)
    used = m["peak"] - m["before"]
    assert used > 200, m   # the run did need memory (bf16 512 px: ~430 MB)
    assert m["after"] - m["before"] < 0.25 * used, m


_STEADY_SCRIPT = r"""
import json, threading
import nst_core
from testlib import shared_image

def rss():
    return int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) // 1024

content, style = shared_image("tubingen.jpg", 256), shared_image("starry_night.jpg", 256)
vgg = nst_core.load_vgg()
marks = []

def job():   # on a worker thread, as ComfyUI runs a prompt
    opts = nst_core.Options(size=256, start_size=256, steps=40, tile_size=96)
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts,
                     callback=lambda info: marks.append(rss()))

t = threading.Thread(target=job)
t.start()
t.join()
print(json.dumps({"n": len(marks), "quarter": marks[len(marks) // 4], "end": marks[-1]}))
"""


def test_memory_does_not_grow_with_the_iterations():
    """A long run holds the same memory from its first quarter to its end. (Each iteration's loss
    terms were kept as 0-d tensors: small blocks that glibc put in the holes of the iteration's
    large freed buffers, so the heap grew every step: here 677 -> 1094 MB over 360 steps.)"""
    m = _run_fresh(_STEADY_SCRIPT)
    assert m["n"] == 480, m   # 12 tiles of 96 px × 40 steps
    assert m["end"] - m["quarter"] < 40, m
