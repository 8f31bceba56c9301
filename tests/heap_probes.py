"""Probes of glibc's heap settings for tests/test_heap.py, run in a fresh process by it: in a long
test session the heap holds large free holes, and a probe block larger than all of them would
exceed the kept heap's trim threshold (2 GiB), so the kept case could not be measured there."""
import ctypes
import resource
import threading

import nst_core
from nst_core import heap
from testlib import shared_image


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def free_in_heap() -> int:
    """Bytes free inside glibc's arenas (all of them), or 0 where mallinfo2 is missing."""
    lib = heap._glibc()
    if lib is None or not hasattr(lib, "mallinfo2"):
        return 0

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]
    lib.mallinfo2.restype = MallInfo2
    return lib.mallinfo2().fordblks


def refault_64mb() -> int:
    """Minor faults while filling a fresh block of at least 64 MB after one of that size was freed
    (the fewest of three tries: the kernel may reclaim a kept page now and then). The block is
    larger than all the free memory inside the heap: a free hole that large would serve it from
    the heap whatever the settings (holes are used before the top or a new mapping), so only the
    top of the heap (kept) or a fresh mapping (glibc's defaults) can serve it. The blocks come from
    glibc's malloc directly: with a tensor, the small allocations torch makes between freeing one
    block and asking for the next sometimes took the front of the freed block, so the next one did
    not fit there and was placed afresh (measured: 1 probe in 6 faulted every page of a kept heap).
    Returned per 64 MB."""
    lib = heap._glibc()
    lib.malloc.restype, lib.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    lib.free.restype, lib.free.argtypes = None, [ctypes.c_void_p]
    n = (64 << 20) + free_in_heap()
    # Freed at the top of a kept heap, a block above the kept trim threshold would be trimmed anyway.
    assert n < heap.KEEP_TRIM_THRESHOLD, f"{n} B free in the heap: too much to probe it"

    def fill() -> int:
        f0 = faults()
        p = lib.malloc(n)
        assert p, f"malloc({n}) failed"
        ctypes.memset(p, 1, n)
        lib.free(p)
        return faults() - f0
    fill()
    return min(fill() for _ in range(3)) * (64 << 20) // n


def kept_during_run(vgg, content, style) -> int:
    """Faults refilling a 64 MB block, measured inside a ``keep_heap="auto"`` run's callback."""
    seen = []
    opts = nst_core.Options(size=64, start_size=64, steps=1, keep_heap="auto")
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts,
                     callback=lambda info: seen.append(refault_64mb()))
    return seen[0]


def measure() -> dict:
    vgg = nst_core.load_vgg()
    content, style = shared_image("tubingen.jpg"), shared_image("starry_night.jpg")
    out = {}
    # Defaults restored after a run: kept inside steady_heap, mapped afresh after a kept run.
    with heap.steady_heap():
        out["kept"] = refault_64mb()
    nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)],
                     opts=nst_core.Options(size=64, start_size=64, steps=2, keep_heap="on"))
    out["after"] = refault_64mb()
    # Nested uses: the outer block is still open, so memory is still kept.
    with heap.steady_heap():
        with heap.steady_heap():
            pass
        out["inner_left"] = refault_64mb()
    # auto: kept in the main thread, glibc's defaults in a worker thread (ComfyUI's case).
    out["auto_main"] = kept_during_run(vgg, content, style)
    worker = []
    t = threading.Thread(target=lambda: worker.append(kept_during_run(vgg, content, style)))
    t.start()
    t.join()
    out["auto_worker"] = worker[0] if worker else None
    # auto with memory short (only 12 MB available): the heap is returned.
    real = heap.available_memory
    heap.available_memory = lambda: 12 << 20
    try:
        out["auto_short"] = kept_during_run(vgg, content, style)
    finally:
        heap.available_memory = real
    return out
