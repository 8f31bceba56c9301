"""One optimisation step as one CUDA graph per scale.

On a GPU a step is a few hundred small kernels, and the host cannot launch them as fast as the
GPU runs them. A CUDA graph records the step's kernels once (forward, losses, backward, the L-BFGS
update, the clamp, the log write) and replays them with one launch. That needs a step whose kernels
and buffers are the same every time (``loop.Step``: static buffers, the L-BFGS ring slot, γ and the
log's row on the device). ``runner`` runs a few eager steps first (lazy buffers, the first L-BFGS
pairs, cuDNN's choices), captures the next, replays it for the rest of the scale and frees it.

Anything that cannot be captured runs eagerly: tiles (a pass per block), Adam (its step counter
lives on the host), other devices, or a capture that fails; the reason is logged once, never raised.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from .options import SWITCH, Options, StylizeError

WARMUP = 3   # eager steps first: L-BFGS takes its first step and stores a pair, lazy buffers get made

log = logging.getLogger(__name__)
_told = set()


def tell_once(reason: str) -> None:
    if reason not in _told:
        _told.add(reason)
        log.warning("nst_core: %s; running eagerly", reason)


def why_eager(opts: Options, device: torch.device, tiled: bool) -> Optional[str]:
    """Why a scale cannot run as a CUDA graph, or None where it can."""
    if opts.cuda_graph not in SWITCH:   # stylize checks it; this guards direct callers of loop.optimise
        raise StylizeError(f"cuda_graph is {opts.cuda_graph!r}; use one of {', '.join(SWITCH)}")
    if opts.cuda_graph == "off":
        return "off"
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, not {device.type}"
    if tiled:
        return "a tiled scale runs a pass per block, not one fixed sequence of kernels"
    if opts.optimizer != "lbfgs":
        return "Adam keeps its step count on the host"
    return None


class Eager:
    def __init__(self, step: Callable[[], None]):
        self.step = step

    def __call__(self) -> None:
        self.step()

    def close(self) -> None:
        pass


class Graphed:
    """``WARMUP`` eager steps on a side stream, then one captured step replayed; eager from the
    capture on if it fails."""

    def __init__(self, step: Callable[[], None], device: torch.device, warmup: int = WARMUP):
        self.step, self.device, self.warmup = step, device, warmup
        self.done = 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.failed = False

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.failed:
            self.step()
        elif self.done < self.warmup:
            self._warm()
        else:
            self._capture()
        self.done += 1

    def _warm(self) -> None:
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            self.step()
        main.wait_stream(side)

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step()
        except Exception as e:   # anything the capture refuses: the step runs eagerly from here on
            self.failed = True
            torch.cuda.synchronize(self.device)
            tell_once(f"the step could not be captured as a CUDA graph ({type(e).__name__}: {str(e)[:200]})")
            self.step()
            return
        self.graph = graph
        graph.replay()   # capturing records the step without running it

    def close(self) -> None:
        if self.graph is not None:
            self.graph.reset()
            self.graph = None


def runner(step: Callable[[], None], opts: Options, device: torch.device, tiled: bool):
    """What runs the steps of one scale: ``runner()`` takes a step, ``runner.close()`` frees it."""
    reason = why_eager(opts, device, tiled)
    if reason is None:
        return Graphed(step, device)
    if opts.cuda_graph == "on":
        tell_once(f"cuda_graph is on, but {reason}")
    return Eager(step)
