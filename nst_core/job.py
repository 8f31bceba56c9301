"""A run's shared context: the model as it runs, the targets, the weights, the options, the plan."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from . import color as colorlib
from .blocks import is_tiled
from .options import ContentTarget, LossWeights, Options, StyleTarget
from .vgg import VGGFeatures


@dataclass
class Job:
    """What every scale and frame of one run shares."""
    model: VGGFeatures                 # the runtime model (reduced precision where chosen)
    content: ContentTarget
    styles: Sequence[StyleTarget]
    weights: LossWeights
    opts: Options
    memory_format: object              # torch.channels_last or None
    stat: object                       # the style statistic (style_stats)
    plan: List[Tuple[Tuple[int, int], int]]   # (size, steps) per scale, coarse to fine

    @property
    def device(self) -> torch.device:
        return self.model.mean.device

    def tile_at(self, hw) -> int:
        """The tile size a scale of size ``hw`` runs in: 0 where it runs whole."""
        return self.opts.tile_size if is_tiled(self.opts.tile_size, hw) else 0

    def as_seen(self, image: torch.Tensor) -> torch.Tensor:
        """The image as the optimiser works on it: grey luminance in luminance mode."""
        return colorlib.gray3(colorlib.luminance(image)) if self.opts.color == "luminance" else image
