"""The terms of one scale's objective, by name: what each compares and how much it counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from .losses import TV_SCALE, tv_closed_form


@dataclass
class ContentTerm:
    layers: Dict[str, float]                 # layer weights, summing to 1
    targets: Dict[str, torch.Tensor]         # per layer: the photo's features
    weight: float                            # the loss weight times the target's own weight
    mask: Optional[torch.Tensor] = None      # [H, W]: where the photo's content counts, or None (everywhere)


@dataclass
class StyleTerm:
    layers: Dict[str, float]                 # layer weights, summing to 1
    targets: Dict[str, object]               # per layer: the prepared target statistic
    mask: Optional[torch.Tensor] = None      # [H, W] region of the output, or None (everywhere)
    weight: float = 1.0                      # a masked style's weight in its region


@dataclass
class TemporalTerm:
    """Video: keep the previous stylised frame, moved onto this one, where the flow is reliable."""
    previous: torch.Tensor                   # [1, 3, H, W]
    mask: torch.Tensor                       # [1, 1, H, W], 0..1
    weight: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (self.mask * (x - self.previous).pow(2)).mean()


@dataclass
class PhotorealTerm:
    term: Callable[[torch.Tensor], torch.Tensor]   # the matting-Laplacian term of the photo (photoreal.py)
    weight: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * self.term(x)


@dataclass
class PixelTerms:
    """Terms on the image itself, evaluated on the whole image in every mode."""
    tv: float
    temporal: Optional[TemporalTerm] = None
    photoreal: Optional[PhotorealTerm] = None
    periodic: bool = False                   # seamless: the last row and column neighbour the first

    def __call__(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        # TV first: autograd runs the nodes made last first, so its backward comes after the
        # network's, when the activations are freed.
        terms = {"tv": tv_closed_form(x, self.tv * TV_SCALE, periodic=self.periodic)}
        if self.temporal is not None:
            terms["temporal"] = self.temporal(x)
        if self.photoreal is not None:
            terms["photoreal"] = self.photoreal(x)
        return terms
