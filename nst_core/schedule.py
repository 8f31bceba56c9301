"""The coarse-to-fine schedule and the starting image."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from .image import fit_size, resize
from .options import MIN_SIZE, Options, StyleTarget, StylizeError


def plan_scales(content_hw: Tuple[int, int], opts: Options) -> List[Tuple[Tuple[int, int], int]]:
    """[(size (H, W), steps)] from coarse to fine."""
    long_side = opts.size if opts.size > 0 else max(content_hw)
    if long_side < MIN_SIZE:
        raise StylizeError(f"output size {long_side} px is too small; use at least {MIN_SIZE} px")
    sides = [long_side]
    if 0 < opts.start_size < long_side:
        s = long_side
        while s / opts.scale_ratio >= opts.start_size * 0.99:
            s = s / opts.scale_ratio
            sides.insert(0, int(round(s)))
    if opts.scale_steps:
        steps = [int(n) for n in opts.scale_steps]
        if len(steps) != len(sides):
            raise StylizeError(f"scale_steps has {len(steps)} entries but the schedule has {len(sides)} "
                               f"scales ({', '.join(map(str, sides))} px)")
    else:
        steps = [max(opts.min_scale_steps if len(sides) > 1 else 1, int(round(opts.steps * opts.step_decay ** k)))
                 for k in range(len(sides))]
    plan = [(fit_size(content_hw, side), n) for side, n in zip(sides, steps)]
    for (h, w), _ in plan:
        if min(h, w) < 16:
            raise StylizeError(f"the content's aspect ratio gives a {w}×{h} px scale, too thin for VGG; "
                               "raise the size or start size")
    return plan


def _noise(shape, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) % 2 ** 64)   # a seed near 2⁶⁴ plus the frame index wraps
    return torch.rand(shape, generator=g).to(device)


def initial_image(opts: Options, content: torch.Tensor, styles: Sequence[StyleTarget], frame: int, device) -> torch.Tensor:
    hw = tuple(content.shape[-2:])
    if opts.init == "content":
        return content.clone()
    if opts.init == "noise":
        return _noise((1, 3) + hw, opts.seed + frame, device)
    if opts.init == "style_mean":
        mean = sum(st.image.to(device).float().mean((0, 2, 3)) * max(st.weight, 0) for st in styles)
        mean = mean / max(sum(max(st.weight, 0) for st in styles), 1e-8)
        return (mean.view(1, 3, 1, 1) + 0.1 * (_noise((1, 3) + hw, opts.seed + frame, device) - 0.5)).clamp(0, 1)
    init = opts.init_image.to(device=device, dtype=torch.float32)
    return resize(init[min(frame, init.shape[0] - 1):][:1], hw)
