"""``stylize``: frames, scales and the pieces of a run put together.

Deviations from Gatys et al. (one line each):
- coarse-to-fine by default: the image is optimised at sizes growing ×√2 from ``start_size`` to
  ``size``, each warm-started from the previous one, with targets recomputed at every scale;
- the image is optimised in RGB 0..1 and projected back into range after every step;
- losses are relative and layer weights normalised (see ``losses``), the default style layers
  lean to the shallow ones (see ``options``), and ``strength`` scales the style weight on a log scale;
- styles without a mask are blended into one target per layer, weighted by their weights;
- frames after the first start from the previous stylised frame moved along the input's optical
  flow (``frames``), with a temporal loss where the flow is reliable; a scene cut starts afresh;
- with ``passes`` > 1, further passes run backwards and forwards over the clip (Ruder et al.'s
  multi-pass), each frame refined for ``frame_steps`` iterations from a blend with its neighbour.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional, Sequence

import torch

from . import color as colorlib
from .checks import validate
from .frames import FrameGuide
from .image import resize
from .loop import LossLog, RunState, optimise
from .objective import Objective, PixelTerms, style_multiplier
from .options import (ContentTarget, LossWeights, Options, Result, StepInfo, StyleTarget, StylizeError)
from .runtime import check_memory, device_settings, is_tiled, memory_format_for, runtime_model
from .schedule import initial_image, plan_scales
from .style_stats import statistic
from .targets import content_features, normalised, pick_mask, style_terms
from .tiling import evaluate_tiled
from .vgg import VGGFeatures

NEIGHBOUR_SHARE = 0.5   # a later pass starts each frame half from its neighbour, half from itself (Ruder's δ)


@dataclass
class Job:
    """What every scale and frame of one run shares."""
    model: VGGFeatures                 # the runtime model (reduced precision where chosen)
    content: ContentTarget
    styles: Sequence[StyleTarget]
    weights: LossWeights
    opts: Options
    memory_format: object
    stat: object
    plan: list

    @property
    def device(self) -> torch.device:
        return self.model.mean.device

    def as_seen(self, image: torch.Tensor) -> torch.Tensor:
        """The image as the optimiser works on it: grey luminance in luminance mode."""
        return colorlib.gray3(colorlib.luminance(image)) if self.opts.color == "luminance" else image


def stylize(model: VGGFeatures, content: ContentTarget, styles: Sequence[StyleTarget],
            weights: Optional[LossWeights] = None, opts: Optional[Options] = None,
            callback: Optional[Callable[[StepInfo], Optional[bool]]] = None,
            interrupt: Optional[Callable[[], None]] = None) -> Result:
    """Optimise an image (or each frame of a batch) to have ``content``'s content and ``styles``' style.

    Runs on the model's device. ``callback(info)`` runs after every iteration; returning True
    stops the run (``Interrupted`` is raised with the current image). ``interrupt()`` is called
    before every evaluation of the loss; it may raise to cancel.
    """
    weights = weights or LossWeights()
    opts = opts or Options()
    validate(model, content, styles, opts, weights)
    device = next(model.parameters()).device
    frames = content.image.to(device=device, dtype=torch.float32)
    plan = plan_scales(tuple(frames.shape[-2:]), opts)
    check_memory(opts, device, plan)
    job = Job(runtime_model(model, device, opts), content, styles, weights, opts,
              memory_format_for(device, opts.channels_last), statistic(opts.style_loss), plan)
    later = [(plan[-1][0], opts.frame_steps or plan[-1][1])] if opts.temporal else plan
    n = frames.shape[0]
    refine = (opts.passes - 1) * n * later[0][1] if opts.temporal and n > 1 else 0
    total = sum(k for _, k in plan) + (n - 1) * sum(k for _, k in later) + refine
    run = RunState(opts, total, LossLog(total, device), callback, interrupt, n_frames=n)
    scale_starts: List[int] = []
    with device_settings(device, opts), torch.enable_grad():
        results, shown = _first_pass(job, frames, later, run, scale_starts, keep=refine > 0)
        for p in range(1, opts.passes if refine else 1):
            order = range(n - 1, -1, -1) if p % 2 else range(n)
            _refine_pass(job, frames, later, run, order, (results, shown))
    return Result(torch.cat(shown), run.log.as_lists(), scale_starts, [hw for hw, _ in plan])


def _first_pass(job: Job, frames: torch.Tensor, later, run: RunState, scale_starts: List[int], keep: bool):
    """Every frame in order: the first (and any after a scene cut) through all scales, the others
    from the previous result moved along the flow. Returns the frames as optimised (kept only for
    later passes: a long clip would hold every frame twice) and as shown."""
    plan, opts = job.plan, job.opts
    results, shown = [], []
    guide = FrameGuide(opts) if opts.temporal else None
    for t in range(frames.shape[0]):
        frame = frames[t:t + 1]
        run.frame = t
        follow = guide.follow(resize(frame, plan[-1][0])) if guide is not None and t > 0 else None
        if t > 0 and follow is None and guide is not None:   # a scene cut: the whole schedule again
            run.total += sum(k for _, k in plan) - sum(k for _, k in later)
        x = _frame(job, frame, plan if follow is None else later, follow, run, scale_starts)
        if guide is not None:
            guide.remember(frame, x)
        results.append(x if keep else None)
        shown.append(run.shown(x))
    return results, shown


def _refine_pass(job: Job, frames: torch.Tensor, later, run: RunState, order, done) -> None:
    """One more pass over the frames in ``order`` (Ruder et al.'s multi-pass): each frame starts from
    its last result blended with the neighbour just refined, moved along the flow, so consistency
    spreads both ways through the clip. Updates ``done`` = (results, shown) in place."""
    results, shown = done
    guide = FrameGuide(job.opts)
    for t in order:
        frame = frames[t:t + 1]
        run.frame = t
        follow = guide.follow(resize(frame, later[0][0])) if guide.past else None
        x = _frame(job, frame, later, follow, run, [], prior=results[t])
        guide.remember(frame, x)
        results[t], shown[t] = x, run.shown(x)


def _frame(job: Job, frame: torch.Tensor, plan, follow, run: RunState, scale_starts: List[int],
           prior: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One frame through its scales; ``follow`` is the ``Guide`` of the neighbouring stylised frame
    onto this one, or None where the frame starts afresh; ``prior`` is this frame's result from an
    earlier pass, to refine."""
    x = prior
    run.n_scales = len(plan)
    for k, (hw, steps) in enumerate(plan):
        run.scale = k
        c_img = resize(frame, hw)
        temporal = None
        if follow is not None:
            x, temporal = _follow(job, follow, c_img, run.frame, prior)
        if x is None:
            x = job.as_seen(initial_image(job.opts, job.as_seen(c_img), job.styles, run.frame, job.device))
        elif tuple(x.shape[-2:]) != tuple(hw):
            x = resize(x, hw)
        if run.frame == 0:
            scale_starts.append(run.iteration)
        obj = _objective(job, c_img, run.frame, temporal)
        tiled = is_tiled(job.opts, hw)
        evaluate = partial(evaluate_tiled, obj, tile=job.opts.tile_size) if tiled else obj.evaluate
        run.color_source = c_img
        try:
            x = optimise(evaluate, x, steps, run, tiled=tiled)
        except torch.OutOfMemoryError:
            raise StylizeError(
                f"out of memory on {job.device} at {hw[1]}×{hw[0]} px. Lower the output size, set a tile size "
                f"(e.g. {max(256, max(hw) // 2)}) to run the network in tiles, lower the L-BFGS history, or "
                "use bf16 precision on a GPU.") from None
        del obj
    return x


def _follow(job: Job, g, c_img: torch.Tensor, t: int, prior: Optional[torch.Tensor]):
    """The start of a later frame (the previous result moved onto it, or in a later pass blended
    with the frame's own last result) and its temporal term."""
    if prior is not None:
        share, base = g.valid * NEIGHBOUR_SHARE, prior
    elif job.opts.init != "content":
        share, base = g.valid, initial_image(job.opts, c_img, job.styles, t, job.device)
    else:   # areas entering the view or changed: the photo in the stylised frame's colours
        share, base = g.valid, colorlib.match_color(c_img, g.warped, "linear")
    x = job.as_seen(g.warped * share + base * (1 - share))
    return x, (g.warped.detach(), g.reliable.detach(), job.weights.temporal)


def _objective(job: Job, c_img: torch.Tensor, t: int, temporal) -> Objective:
    """The objective of one scale of one frame."""
    hw = tuple(c_img.shape[-2:])
    opts, w = job.opts, job.weights
    tile = opts.tile_size if is_tiled(opts, hw) else 0
    c_layers = normalised(job.content.layers)
    c_targets = content_features(job.model, job.as_seen(c_img), list(c_layers), job.memory_format, tile)
    # With a tile size, a style image larger than it is seen in blocks too (a pass without a graph
    # keeps only the tapped layers, so a style image somewhat larger than the output fits untiled).
    terms = style_terms(job.model, job.styles, c_img, t, opts.color, job.memory_format, opts.tile_size, job.stat)
    photoreal = None
    if w.photoreal > 0:   # built once per scale from the content at that scale
        from .photoreal import laplacian_term
        photoreal = (laplacian_term(c_img), w.photoreal)
    pixel = PixelTerms(w.tv, temporal, photoreal)
    content = (c_layers, c_targets, w.content * job.content.weight, pick_mask(job.content.mask, t))
    return Objective(job.model, hw, job.memory_format, job.stat, content, terms,
                     w.style * style_multiplier(w.strength), pixel)
