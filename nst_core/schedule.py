"""The coarse-to-fine schedule: the size and the iterations of each scale."""
from __future__ import annotations

from typing import List, Tuple

from .image import fit_size
from .options import MIN_SIZE, Options, StylizeError
from .seamless import periodic_size


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
    if opts.seamless:   # every layer's grid then holds whole periods
        plan = [(periodic_size(hw), n) for hw, n in plan]
    for (h, w), _ in plan:
        if min(h, w) < 16:
            raise StylizeError(f"the content's aspect ratio gives a {w}×{h} px scale, too thin for VGG; "
                               "raise the size or start size")
    return plan
