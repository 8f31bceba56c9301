"""Keep freed memory inside the process while a CPU run lasts (Linux with glibc only).

glibc hands large freed blocks back to the kernel (``munmap``, or trimming the top of the heap),
so the next iteration's tensors of the same sizes fault every page in again: 50,000 minor page
faults per iteration at 512 px and 325,000 at 1024 px in bf16, 20–30% of the iteration time on
the CPU here. For the duration of a run, :func:`steady_heap` asks glibc to serve large blocks from
the heap and not to trim it (``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD, 2³¹-1)``).
Afterwards it puts glibc's default values back and calls ``malloc_trim(0)``, which returns the
free memory to the system. The price is the heap's fragmentation: the peak is about 18% higher
at 1024 px. Elsewhere (macOS, Windows, musl) it does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from typing import Optional

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# glibc's documented defaults (mallopt(3)), restored after a run.
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
KEEP_TRIM_THRESHOLD = 2 ** 31 - 1      # mallopt takes an int

_lock = threading.Lock()
_depth = 0
_libc = None


def _glibc():
    """The C library if it is glibc (it has ``gnu_get_libc_version``), else None."""
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(lib, "gnu_get_libc_version") and hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                    lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                    lib.malloc_trim.argtypes = [ctypes.c_size_t]
                    _libc = lib
            except OSError:
                pass
    return _libc or None


def pays_here() -> bool:
    """Whether keeping the heap pays off for a run on this thread: in the main thread (the command
    line, scripts) it does (0.29 → 0.24 s per iteration at 512 px, 1.27 → 0.86 s at 1024 px).
    Other threads (ComfyUI runs prompts on one) allocate from their own glibc arena, which still
    unmaps whole heaps when they empty: there it gained 8% at 1024 px and nothing at 512 px, for
    the same extra peak memory, so ``auto`` leaves it off."""
    return available() and threading.current_thread() is threading.main_thread()


# What a run adds to its process per pixel of its largest scale with glibc's defaults (measured at
# 1024 px: 1.1–1.2 GB in bf16; 2.7 KB a pixel in fp32 at 512 px), rounded up, and what keeping the
# heap adds on top of that (×1.2 at 1024 px, ×1.36 at 2048 px measured).
BYTES_PER_PIXEL = {"reduced": 1500, "fp32": 3000}
KEPT_FACTOR = 1.5


def available_memory() -> Optional[int]:
    """MemAvailable from /proc/meminfo in bytes (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fits(pixels: int, reduced_precision: bool, avail: Optional[int] = None) -> bool:
    """Whether a run whose largest optimised image has ``pixels`` pixels can keep its heap and still
    use at most half of the available memory (estimated: see ``BYTES_PER_PIXEL``)."""
    avail = available_memory() if avail is None else avail
    if avail is None:
        return True
    need = pixels * BYTES_PER_PIXEL["reduced" if reduced_precision else "fp32"] * KEPT_FACTOR
    return need <= avail / 2


# What a tiled scale holds per pixel of the whole image besides its tile's pass (the image, the
# content, the blend weights, each tile's optimiser state): 140–310 B measured at 2048 and 4096 px
# while the heap still grew with every iteration, 100–150 B since (0763004); kept at 320 for margin.
TILED_BYTES_PER_PIXEL = 320


def run_need(pixels: int, reduced_precision: bool, tile: int = 0) -> int:
    """Estimated bytes a run adds to its process when its largest optimised image has ``pixels``
    pixels, optimised whole (``tile`` 0) or in tiles of at most ``tile`` px a side, with glibc's
    default heap (see ``BYTES_PER_PIXEL``, rounded up from measurements)."""
    per_px = BYTES_PER_PIXEL["reduced" if reduced_precision else "fp32"]
    if tile <= 0:
        return pixels * per_px
    return min(pixels, 2 * tile * tile) * per_px + pixels * TILED_BYTES_PER_PIXEL


def largest_tile(avail: int, reduced_precision: bool, pixels: int) -> int:
    """The largest tile size (a multiple of 64 px) whose run on an image of ``pixels`` pixels is
    estimated to need at most ``avail`` bytes; 0 where not even 64 px tiles would."""
    t = 0
    while run_need(pixels, reduced_precision, t + 64) <= avail and t < 8192:
        t += 64
    return t


def available() -> bool:
    """True where :func:`steady_heap` has an effect (Linux with glibc)."""
    return _glibc() is not None


@contextlib.contextmanager
def steady_heap(enabled: bool = True):
    """Within the block, freed memory stays in the process for reuse (see the module's text).
    Nested and concurrent uses are counted: the last one to leave restores glibc's defaults."""
    global _depth
    lib = _glibc() if enabled else None
    if lib is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            lib.mallopt(M_MMAP_MAX, 0)
            lib.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                lib.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                lib.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                lib.malloc_trim(0)


@contextlib.contextmanager
def returned_after(enabled: bool = True):
    """On leaving the block, hand the process' free memory back to the system (``malloc_trim(0)``)
    unless a :func:`steady_heap` is still keeping it. For runs with glibc's defaults, e.g. in
    ComfyUI's worker thread: its arenas keep what a run freed (at 1024 px RSS stayed 640 MB above
    what it was before the run; trimmed, 110 MB), and that memory belongs to the next node."""
    try:
        yield
    finally:
        if enabled:
            with _lock:
                if _depth == 0:
                    release()


def release() -> None:
    """Hand the free memory back to the system now (``malloc_trim(0)``), e.g. between the phases
    of a run inside :func:`steady_heap`: what one phase freed then stops counting as resident, and the
    next phase's steady state no longer sits on top of it."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)
