"""keep_heap: during a CPU run freed memory stays in the process, so iterations stop faulting
pages in; afterwards glibc's behaviour is back (large blocks are returned to the system)."""
import resource
import statistics

import pytest
import torch

import nst_core
from nst_core import heap
from nst_core.transfer import StylizeError

pytestmark = pytest.mark.skipif(not heap.available(), reason="keep_heap works with glibc (Linux) only")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _faults_per_iteration(vgg, content, style, setting: str) -> float:
    marks = []
    opts = nst_core.Options(size=192, start_size=192, steps=9, precision="fp32", keep_heap=setting)
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts,
                     callback=lambda info: marks.append(_faults()))
    steps = [b - a for a, b in zip(marks[3:], marks[4:])]   # after the first iterations' growth
    return statistics.median(steps)


def _refault_64mb() -> int:
    """Minor faults while filling a fresh 64 MB tensor after one of that size was freed (the
    fewest of three tries: the kernel may reclaim a kept page now and then)."""
    torch.ones(16 << 20)
    counts = []
    for _ in range(3):
        f0 = _faults()
        torch.ones(16 << 20)
        counts.append(_faults() - f0)
    return min(counts)


def test_iterations_stop_faulting_pages_in(vgg, content128, style128):
    on1 = _faults_per_iteration(vgg, content128, style128, "on")
    off = _faults_per_iteration(vgg, content128, style128, "off")
    on2 = _faults_per_iteration(vgg, content128, style128, "on")
    # 192×144 px in fp32: relu1_1 alone is 7 MB, about 1,700 pages; all of them are new every
    # iteration when the memory goes back to the system.
    assert off > 1000, off
    assert max(on1, on2) < 0.05 * off, (on1, off, on2)


def test_defaults_are_restored_after_a_run(vgg, content96, style96):
    opts = nst_core.Options(size=64, start_size=64, steps=2, keep_heap="on")
    with heap.steady_heap():
        kept = _refault_64mb()          # served again from the kept heap
    nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)], opts=opts)
    after = _refault_64mb()             # mapped afresh: glibc's default for large blocks
    assert kept < 500, kept
    assert after > 10000, after          # 64 MB is 16,384 pages of 4 KiB


def test_nested_uses_restore_only_at_the_outermost():
    with heap.steady_heap():
        with heap.steady_heap():
            pass
        inner_left = _refault_64mb()    # the outer block is still open: memory is still kept
    assert inner_left < 500, inner_left


def test_unknown_setting_is_refused(vgg, content96, style96):
    with pytest.raises(StylizeError, match="keep_heap"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=64, keep_heap="yes"))


def _kept_during_run(vgg, content, style) -> int:
    """Faults refilling a 64 MB block, measured inside a ``keep_heap="auto"`` run's callback."""
    seen = []
    opts = nst_core.Options(size=64, start_size=64, steps=1, keep_heap="auto")
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts,
                     callback=lambda info: seen.append(_refault_64mb()))
    return seen[0]


def test_auto_keeps_the_heap_in_the_main_thread_only(vgg, content96, style96):
    import threading
    main = _kept_during_run(vgg, content96, style96)
    out = []
    worker = threading.Thread(target=lambda: out.append(_kept_during_run(vgg, content96, style96)))
    worker.start()
    worker.join()
    assert main < 500, main                  # kept: the block is reused
    assert out and out[0] > 10000, out       # a worker thread (ComfyUI's case): glibc's defaults
