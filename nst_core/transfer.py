"""``stylize``: frames, scales and the pieces of a run put together.

Deviations from Gatys et al. (one line each):
- coarse-to-fine by default: the image is optimised at sizes growing ×√2 from ``start_size`` to
  ``size``, each warm-started from the previous one, with targets recomputed at every scale;
- the image is optimised in RGB 0..1 and projected back into range after every step;
- losses are relative and layer weights normalised (see ``losses``), the default style layers
  lean to the shallow ones (see ``options``), and ``strength`` scales the style weight on a log scale;
- styles without a mask are blended into one target per layer, weighted by their weights;
- frames after the first start from the previous stylised frame moved along the input's optical
  flow (``video.frames``), with a temporal loss where the flow is reliable; a scene cut starts afresh;
- with ``passes`` > 1, further passes run backwards and forwards over the clip (Ruder et al.'s
  multi-pass), each frame refined for ``frame_steps`` iterations from a blend with its neighbour.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, List, Optional, Sequence

import torch

from . import color as colorlib
from .checks import validate
from .image import resize
from .job import Job
from .loop import LossLog, RunState, optimise
from .memory import check_memory
from .objective import Objective
from .options import ContentTarget, LossWeights, Options, Result, StepInfo, StyleTarget, StylizeError
from .runtime import device_settings, memory_format_for, runtime_model
from .schedule import plan_scales
from .seamless import resize_periodic
from .start import initial_image
from .style_stats import statistic
from .targets import content_term, style_terms
from .terms import PhotorealTerm, PixelTerms, TemporalTerm
from .tiling import evaluate_tiled
from .vgg import VGGFeatures

NEIGHBOUR_SHARE = 0.5   # a later pass starts each frame half from its neighbour, half from itself (Ruder's δ)


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
    job = prepare(model, content, styles, weights, opts)
    check_memory(job)
    frames = content.image.to(device=job.device, dtype=torch.float32)
    plan, device = job.plan, job.device
    n = frames.shape[0]
    video = opts.video if n > 1 else None
    later = [(plan[-1][0], video.frame_steps or plan[-1][1])] if video and video.temporal else plan
    refine = (video.passes - 1) * n * later[0][1] if video and video.temporal else 0
    total = sum(k for _, k in plan) + (n - 1) * sum(k for _, k in later) + refine
    run = RunState(opts, total, LossLog(total, device), callback, interrupt, n_frames=n)
    scale_starts: List[int] = []
    with device_settings(device, opts), torch.enable_grad():
        results, shown = _first_pass(job, frames, later, run, scale_starts, keep=refine > 0)
        for p in range(1, video.passes if refine else 1):
            order = range(n - 1, -1, -1) if p % 2 else range(n)
            _refine_pass(job, frames, later, run, order, (results, shown))
    return Result(torch.cat(shown), run.log.as_lists(), scale_starts, [hw for hw, _ in plan])


def prepare(model: VGGFeatures, content: ContentTarget, styles: Sequence[StyleTarget], weights: LossWeights,
            opts: Options) -> Job:
    """The run's shared context: the model as it runs on its device, the statistic, the plan."""
    device = next(model.parameters()).device
    return Job(runtime_model(model, device, opts), content, styles, weights, opts,
               memory_format_for(device, opts.channels_last), statistic(opts.style_loss),
               plan_scales(tuple(content.image.shape[-2:]), opts))


def _frame_guide(job: Job):
    """What moves the last stylised frame onto the next (imported here: only clips need OpenCV)."""
    from .video.frames import FrameGuide
    return FrameGuide(job.opts.video)


def _first_pass(job: Job, frames: torch.Tensor, later, run: RunState, scale_starts: List[int], keep: bool):
    """Every frame in order: the first (and any after a scene cut) through all scales, the others
    from the previous result moved along the flow. Returns the frames as optimised (kept only for
    later passes: a long clip would hold every frame twice) and as shown."""
    plan = job.plan
    results, shown = [], []
    guide = _frame_guide(job) if frames.shape[0] > 1 and job.opts.video.temporal else None
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
        shown.append(_shown(run, x, frame))
    return results, shown


def _refine_pass(job: Job, frames: torch.Tensor, later, run: RunState, order, done) -> None:
    """One more pass over the frames in ``order`` (Ruder et al.'s multi-pass): each frame starts from
    its last result blended with the neighbour just refined, moved along the flow, so consistency
    spreads both ways through the clip. Updates ``done`` = (results, shown) in place."""
    results, shown = done
    guide = _frame_guide(job)
    for t in order:
        frame = frames[t:t + 1]
        run.frame = t
        follow = guide.follow(resize(frame, later[0][0])) if guide.past else None
        x = _frame(job, frame, later, follow, run, [], prior=results[t])
        guide.remember(frame, x)
        results[t], shown[t] = x, _shown(run, x, frame)


def _shown(run: RunState, x: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    return run.shown(x, resize(frame, tuple(x.shape[-2:])))


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
            x = job.as_seen(initial_image(job, job.as_seen(c_img), run.frame))
        elif tuple(x.shape[-2:]) != tuple(hw):
            x = resize_periodic(x, hw) if job.opts.seamless else resize(x, hw)
        if run.frame == 0:
            scale_starts.append(run.iteration)
        obj = objective_at(job, c_img, run.frame, temporal)
        tile = job.tile_at(hw)
        evaluate = partial(evaluate_tiled, obj, tile=tile, wrap=job.opts.seamless) if tile else obj.evaluate
        try:
            x = optimise(evaluate, x, steps, run, c_img, tiled=bool(tile))
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
        share, base = g.valid, initial_image(job, c_img, t)
    else:   # areas entering the view or changed: the photo in the stylised frame's colours
        share, base = g.valid, colorlib.match_color(c_img, g.warped, "linear")
    x = job.as_seen(g.warped * share + base * (1 - share))
    return x, TemporalTerm(g.warped.detach(), g.reliable.detach(), job.weights.temporal)


def objective_at(job: Job, c_img: torch.Tensor, frame: int, temporal: Optional[TemporalTerm] = None) -> Objective:
    """The objective of one scale of one frame (``c_img``: the photo at that scale)."""
    photoreal = None
    if job.weights.photoreal > 0:   # built once per scale from the content at that scale
        from .photoreal import laplacian_term
        photoreal = PhotorealTerm(laplacian_term(c_img), job.weights.photoreal)
    pixel = PixelTerms(job.weights.tv, temporal, photoreal, job.opts.seamless)
    return Objective(job, c_img.shape[-2:], content_term(job, c_img, frame), style_terms(job, c_img, frame), pixel)
