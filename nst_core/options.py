"""What a run is asked to do: the targets, the loss weights, the options, and what it reports."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}
# Shallow layers (brush strokes, colour) weigh more than deep ones, which copy the painting's objects.
DEFAULT_STYLE_LAYERS = {"relu1_1": 4.0, "relu2_1": 2.0, "relu3_1": 1.0, "relu4_1": 0.5, "relu5_1": 0.5}
MIN_SIZE = 32
INITS = ("content", "noise", "style_mean", "image")
COLOR_MODES = ("none", "luminance", "linear", "histogram")
OPTIMIZERS = ("lbfgs", "adam")
STYLE_LOSSES = ("gram", "mean_std", "w2", "sliced_w", "gram_deep_ms")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
FLOWS = ("dis", "farneback", "shift")   # frame-to-frame motion: OpenCV's optical flows, or one global shift


class StylizeError(ValueError):
    """Inputs that cannot work; the message names the problem and what to do."""


class Interrupted(Exception):
    """Raised when a callback asks the run to stop (the partial result is attached)."""

    def __init__(self, image=None):
        super().__init__("stopped by the callback")
        self.image = image


@dataclass
class ContentTarget:
    image: torch.Tensor                      # [B, 3, H, W] RGB 0..1 (B = frames)
    layers: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CONTENT_LAYERS))
    weight: float = 1.0                      # multiplies LossWeights.content
    mask: Optional[torch.Tensor] = None      # [H, W] or [N, H, W], 0..1: where the content term applies


@dataclass
class StyleTarget:
    image: torch.Tensor                      # [1, 3, H, W] RGB 0..1 (more images are averaged)
    layers: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    weight: float = 1.0                      # relative weight among blended styles / region strength
    scale: float = 1.0                       # style image long side relative to the output's
    mask: Optional[torch.Tensor] = None      # [H, W] or [N, H, W], 0..1: region of the output
    source_mask: Optional[torch.Tensor] = None   # [H, W], 0..1: the region of the style image to take


@dataclass
class LossWeights:
    content: float = 10.0          # with style 100: the calibrated balance (bench/calibrate.py)
    style: float = 100.0
    tv: float = 1e-3
    temporal: float = 1000.0
    photoreal: float = 0.0          # > 0: photorealism regulariser (matting Laplacian, see photoreal.py)
    strength: float = 0.5           # style strength 0..1 along the content-style trade-off; 0.5 = calibrated


@dataclass
class Options:
    size: int = 512                 # long side of the output in pixels (0: the content's own size)
    steps: int = 100                # iterations at the first (coarsest) scale
    start_size: int = 256           # first scale's long side; >= size gives a single-scale run
    scale_ratio: float = math.sqrt(2.0)
    step_decay: float = 0.5         # each finer scale gets this fraction of the previous one's steps
    min_scale_steps: int = 20
    scale_steps: Optional[Sequence[int]] = None   # explicit steps per scale (overrides the above)
    optimizer: str = "lbfgs"
    lr: float = 0.02                # Adam step size in 0..1 pixel units
    history_size: int = 0           # L-BFGS memory; 0 = memory-aware default
    precondition: bool = True       # L-BFGS: spectral (1/f) initial Hessian, see lbfgs.py
    init: str = "content"
    init_image: Optional[torch.Tensor] = None
    seed: int = 0
    color: str = "none"             # none | luminance | linear | histogram
    style_loss: str = "gram"        # gram | mean_std | w2 | sliced_w | gram_deep_ms (see style_stats.py)
    frame_steps: int = 0            # iterations for frames after the first (0: the last scale's)
    temporal: bool = True           # warm-start + temporal loss across frames
    flow: str = "dis"               # frame-to-frame motion: dis | farneback (optical flow) | shift (one global shift)
    long_term: int = 0              # k > 1: pixels the previous frame cannot follow come from k, 2k, 4k frames back
    passes: int = 1                 # > 1: more passes over a clip, alternately backwards and forwards (multi-pass)
    scene_cut: float = 0.3          # a frame starts fresh when fewer than this fraction of its pixels follow the last
    precision: str = "auto"         # auto | fp32 | bf16 | fp16 (the VGG pass; see runtime.py)
    channels_last: str = "auto"     # auto | on | off
    tile_size: int = 0              # > 0: the VGG pass of larger scales runs in tiles of this size
    cudnn_benchmark: Optional[bool] = None   # cuDNN autotuner; None: as the host has it (it costs seconds per new size)
    tf32: bool = True


@dataclass
class StepInfo:
    iteration: int                  # 1-based over the whole run (all scales and frames)
    total: int
    scale: int                      # 0-based scale index
    n_scales: int
    size: Tuple[int, int]
    frame: int
    n_frames: int
    loss_tensors: Dict[str, torch.Tensor]
    _image: Callable[[], torch.Tensor]

    @property
    def losses(self) -> Dict[str, float]:
        return {k: float(v) for k, v in self.loss_tensors.items()}

    def image(self) -> torch.Tensor:
        """The current image, RGB 0..1 ``[1, 3, H, W]`` (colour restored in luminance mode)."""
        return self._image()


@dataclass
class Result:
    image: torch.Tensor                      # [B, 3, H, W]
    history: Dict[str, List[float]]          # loss terms per iteration
    scale_starts: List[int]                  # iteration index where each scale (of frame 0) began
    sizes: List[Tuple[int, int]]
