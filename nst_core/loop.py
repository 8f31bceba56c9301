"""The optimisation loop at one scale: L-BFGS or Adam on the image, with callbacks.

The objective gives the gradient directly (``evaluate``), so the same loop runs a whole image and
an exact tiled evaluation. Nothing in an iteration waits for the device: the step writes its loss
terms into a log on the device, and only a callback that reads them waits. After its first step a
step is the same sequence of operations on the same buffers, so it can run as a CUDA graph
(``graph.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from . import color as colorlib
from . import graph
from .lbfgs import LBFGS, spectral_preconditioner
from .losses import base_vector
from .options import Interrupted, Options, StepInfo


class LossLog:
    """The loss terms of every iteration in one ``[rows, terms]`` buffer on the run's device,
    written by the step itself at a row index kept on the device: one write a step, no host sync,
    and the same write every step (what a CUDA graph replays). The host keeps which terms each
    row has (a later frame adds the temporal term)."""

    def __init__(self, capacity: int, device):
        self.device = device
        self.names: List[str] = []
        self.buffer = torch.zeros((max(1, int(capacity)), 0), device=device)
        self.row = torch.zeros((), dtype=torch.long, device=device)   # the next row, on the device
        self.rows: List[Tuple[int, ...]] = []                            # per row written: its columns
        self._columns: Dict[Tuple[str, ...], Tuple[Tuple[int, ...], torch.Tensor]] = {}

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` more rows, made before a scale starts (a step never reallocates)."""
        need = len(self.rows) + rows
        if need > self.buffer.shape[0]:
            more = self.buffer.new_zeros((max(need, 2 * self.buffer.shape[0]) - self.buffer.shape[0], self.buffer.shape[1]))
            self.buffer = torch.cat([self.buffer, more])

    def columns(self, names: Tuple[str, ...]):
        """(column indices, the same on the device) of these terms; new terms get new columns."""
        if names not in self._columns:
            new = [n for n in names if n not in self.names]
            if new:
                self.names += new
                self.buffer = torch.cat([self.buffer, self.buffer.new_zeros((self.buffer.shape[0], len(new)))], 1)
            cols = tuple(self.names.index(n) for n in names)
            self._columns[names] = (cols, torch.tensor(cols, dtype=torch.long).to(self.device))
        return self._columns[names]

    def write(self, terms: Dict[str, torch.Tensor]) -> None:
        """Device side of a step: the terms into the next row, the row index forward."""
        _, cols = self.columns(tuple(terms))
        vec = base_vector(terms)
        vec = torch.stack(list(terms.values())) if vec is None else vec
        self.buffer.index_put_((self.row, cols), vec.to(self.buffer.dtype))
        self.row.add_(1)

    def mark(self, names: Tuple[str, ...]) -> Dict[str, torch.Tensor]:
        """Host side of a step that ran: its row's terms, as views of the buffer (no copy)."""
        cols, _ = self.columns(names)
        r = len(self.rows)
        self.rows.append(cols)
        return {n: self.buffer[r, c] for n, c in zip(names, cols)}

    def as_lists(self) -> Dict[str, List[float]]:
        table = self.buffer[:len(self.rows)].cpu().tolist()
        out: Dict[str, List[float]] = {n: [] for n in self.names}
        for values, cols in zip(table, self.rows):
            for c in cols:
                out[self.names[c]].append(values[c])
        return {k: v for k, v in out.items() if v}


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

    def report(self, x: torch.Tensor, names: Tuple[str, ...], photo: torch.Tensor) -> None:
        """After a step: count it and call the callback with its terms (views of the log's row)."""
        self.iteration += 1
        terms = self.log.mark(names)
        if self.callback is None:
            return
        info = StepInfo(self.iteration, self.total, self.scale, self.n_scales, tuple(x.shape[-2:]), self.frame,
                        self.n_frames, terms, lambda: self.shown(x, photo))
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


class Step:
    """One iteration at one scale: the gradient, the optimiser's update of ``x`` in place and the
    loss terms into the log. Once L-BFGS holds its first pair, a step reads and writes only tensors
    that outlive it and takes no number from the device, so a CUDA graph of it can be replayed
    (``graph.py``)."""

    def __init__(self, evaluate: Callable[[torch.Tensor], Tuple[torch.Tensor, Dict[str, torch.Tensor]]],
                 x: torch.Tensor, run: RunState):
        self.evaluate, self.log, opts = evaluate, run.log, run.opts
        self.x = x.detach().clone()
        self.lbfgs = opts.optimizer == "lbfgs"
        if self.lbfgs:
            self.opt = LBFGS(self.x, history_size=opts.history_size or default_history(self.x.numel(), self.x.device),
                             precondition=spectral_preconditioner(self.x.shape) if opts.precondition else None)
        else:
            self.x.requires_grad_(True)
            self.opt = torch.optim.Adam([self.x], lr=opts.lr)
        self.names: Tuple[str, ...] = ()

    def __call__(self) -> None:
        grad, terms = self.evaluate(self.x.detach())
        if self.lbfgs:
            self.opt.step(grad)
        else:
            self.x.grad = grad
            self.opt.step()
            with torch.no_grad():
                self.x.clamp_(0, 1)
        del grad
        self.log.write(terms)
        self.names = tuple(terms)


def optimise(evaluate: Callable[[torch.Tensor], Tuple[torch.Tensor, Dict[str, torch.Tensor]]],
             x: torch.Tensor, steps: int, run: RunState, photo: torch.Tensor, tiled: bool = False) -> torch.Tensor:
    """``steps`` iterations from ``x``; ``evaluate(x)`` gives ``(gradient, loss terms)``; ``photo``
    is the content at this scale (for what the callback shows). Steps run as one CUDA graph each
    where the options and the device allow (``graph.py``), else eagerly."""
    step = Step(evaluate, x, run)
    run.log.reserve(steps)
    runner = graph.runner(step, run.opts, step.x.device, tiled)
    try:
        for _ in range(steps):
            if run.interrupt is not None:
                run.interrupt()
            runner()
            run.report(step.x, step.names, photo)
    finally:
        runner.close()
    return step.x.detach()
