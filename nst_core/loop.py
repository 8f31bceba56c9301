"""The optimisation loop at one scale: L-BFGS or Adam on the image, with callbacks.

The objective gives the gradient directly (``evaluate``), so the same loop runs a whole image and
an exact tiled evaluation. Nothing in an iteration waits for the device: loss values stay tensors
until a callback reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from . import color as colorlib
from .lbfgs import LBFGS, spectral_preconditioner
from .options import Interrupted, Options, StepInfo


class LossLog:
    """The loss terms of every iteration, in one preallocated buffer per term on the run's device
    (no host sync; a list of 0-d tensors would be many small blocks that live as long as the run)."""

    def __init__(self, capacity: int, device):
        self.capacity = max(1, int(capacity))
        self.device = device
        self.buffers: Dict[str, torch.Tensor] = {}
        self.counts: Dict[str, int] = {}

    def add(self, terms: Dict[str, torch.Tensor]) -> None:
        for name, v in terms.items():
            buf, n = self.buffers.get(name), self.counts.get(name, 0)
            if buf is None:
                buf = self.buffers[name] = torch.empty(self.capacity, device=self.device)
            elif n == buf.numel():   # more iterations than planned: grow
                buf = self.buffers[name] = torch.cat([buf, torch.empty_like(buf)])
            buf[n] = v
            self.counts[name] = n + 1

    def as_lists(self) -> Dict[str, List[float]]:
        return {k: b[:self.counts[k]].cpu().tolist() for k, b in self.buffers.items()}


@dataclass
class RunState:
    """What every scale of a run shares: the callbacks, the log and where the run is."""
    opts: Options
    total: int
    log: LossLog
    callback: Optional[Callable[[StepInfo], Optional[bool]]] = None
    interrupt: Optional[Callable[[], None]] = None
    iteration: int = 0
    frame: int = 0
    n_frames: int = 1
    scale: int = 0
    n_scales: int = 1

    def shown(self, x: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """The image as a user sees it: in luminance mode with the colours of ``photo`` (the content
        at this scale) put back."""
        img = x.detach()
        if self.opts.color == "luminance":
            return colorlib.combine_luminance(img, photo)
        return img.clone()

    def report(self, x: torch.Tensor, terms: Dict[str, torch.Tensor], photo: torch.Tensor) -> None:
        self.iteration += 1
        self.log.add(terms)
        if self.callback is None:
            return
        info = StepInfo(self.iteration, self.total, self.scale, self.n_scales, tuple(x.shape[-2:]), self.frame,
                        self.n_frames, dict(terms), lambda: self.shown(x, photo))
        if self.callback(info):
            raise Interrupted(self.shown(x, photo))


def default_history(numel: int, device: torch.device) -> int:
    """L-BFGS memory: 20 pairs, fewer where 20 would take more than 128 MB (2 fp32 vectors a
    pair; a GPU may use a sixteenth of its free memory), never fewer than 5."""
    budget = 128 << 20
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = max(budget, free // 16)
    return int(max(5, min(20, budget // (8 * numel))))


def optimise(evaluate: Callable[[torch.Tensor], Tuple[torch.Tensor, Dict[str, torch.Tensor]]],
             x: torch.Tensor, steps: int, run: RunState, photo: torch.Tensor) -> torch.Tensor:
    """``steps`` iterations from ``x``; ``evaluate(x)`` gives ``(gradient, loss terms)``; ``photo``
    is the content at this scale (for what the callback shows)."""
    x = x.detach().clone()
    opts = run.opts
    if opts.optimizer == "lbfgs":
        opt = LBFGS(x, history_size=opts.history_size or default_history(x.numel(), x.device),
                    precondition=spectral_preconditioner(x.shape) if opts.precondition else None)
    else:
        x.requires_grad_(True)
        opt = torch.optim.Adam([x], lr=opts.lr)
    for _ in range(steps):
        if run.interrupt is not None:
            run.interrupt()
        grad, terms = evaluate(x.detach())
        if opts.optimizer == "lbfgs":
            opt.step(grad)
        else:
            x.grad = grad
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        del grad
        run.report(x, terms, photo)
    return x.detach()
