"""What a run is asked to do: the targets, the loss weights, the options, and what it reports.

Every option is declared once, on its field (``spec.option``: default, range or choices, help);
the command line, the ComfyUI nodes and ``checks`` build on those declarations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .spec import option

DEFAULT_CONTENT_LAYERS = {"relu4_2": 1.0}
# Shallow layers (brush strokes, colour) weigh more than deep ones, which copy the painting's objects.
DEFAULT_STYLE_LAYERS = {"relu1_1": 4.0, "relu2_1": 2.0, "relu3_1": 1.0, "relu4_1": 0.5, "relu5_1": 0.5}
MIN_SIZE = 32
MAX_SIZE = 16384
MIN_TILE = 64
MAX_STEPS = 10000
INITS = ("content", "noise", "style_mean", "image")
COLOR_MODES = ("none", "luminance", "linear", "histogram")
OPTIMIZERS = ("lbfgs", "adam")
STYLE_LOSSES = ("gram", "mean_std", "w2", "sliced_w", "gram_deep_ms")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
FLOWS = ("dis", "farneback", "shift")   # frame-to-frame motion: OpenCV's optical flows, or one global shift
SWITCH = ("auto", "on", "off")
STRENGTH_RANGE = 10.0   # style strength 0 / 1 divides / multiplies the style weight by this


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
    weight: float = option(1.0, "Multiplies the content weight: higher keeps more of the photo.",
                           low=0.0, high=1000.0, step=0.05, cli=False)
    mask: Optional[torch.Tensor] = None      # [H, W] or [N, H, W], 0..1: where the content term applies
    init_image: Optional[torch.Tensor] = None   # [N, 3, H, W]: the start with init "image" (one per frame, or one)
    texture: bool = False                    # no photo: ``image`` is a blank canvas of the size wanted (``canvas``)

    @classmethod
    def canvas(cls, height: int, width: int) -> "ContentTarget":
        """No photo: a texture of the style(s) of this size (texture synthesis, Gatys et al. 2015)."""
        return cls(torch.full((1, 3, int(height), int(width)), 0.5), layers={}, weight=0.0, texture=True)


@dataclass
class StyleTarget:
    image: torch.Tensor                      # [1, 3, H, W] RGB 0..1 (more images are averaged)
    layers: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STYLE_LAYERS))
    weight: float = option(1.0, "Blend weight among the styles without a mask (relative), or the strength of a "
                                "masked style in its region.", low=0.0, high=1000.0, step=0.05, cli=False)
    scale: float = option(1.0, "Size of the painting relative to the output: below 1 gives smaller brush strokes, "
                               "above 1 larger ones (0.25-4 is the useful range).", low=0.05, high=8.0, step=0.05,
                          flag="--style-scale")
    mask: Optional[torch.Tensor] = None      # [H, W] or [N, H, W], 0..1: region of the output
    source_mask: Optional[torch.Tensor] = None   # [H, W], 0..1: the region of the style image to take


@dataclass
class LossWeights:
    content: float = option(10.0, "How much the result must keep the photo's content.",   # with style 100: calibrated
                            low=0.0, high=1e5, step=0.1, key="content_weight")
    style: float = option(100.0, "How much the result must match the painting's style (the style strength "
                                 "multiplies it).", low=0.0, high=1e6, step=1.0, key="style_weight")
    tv: float = option(1e-3, "Total variation: smooths high-frequency noise; 0 turns it off.",
                       low=0.0, high=10.0, step=1e-4, key="tv_weight")
    temporal: float = option(1000.0, "Video: how strongly each frame keeps the previous one's paint where the "
                                     "optical flow is reliable; 0 turns it off.",
                             low=0.0, high=1e5, step=1.0, key="temporal_weight")
    photoreal: float = option(0.0, "Photorealism: the matting Laplacian of the content photo (Luan et al.), which "
                                   "keeps its edges and shapes; 0 turns it off.",
                              low=0.0, high=1e7, step=100.0, key="photoreal_weight")
    strength: float = option(0.5, "Less or more of the painting, in even steps: 0.5 is the calibrated balance "
                                  "(keeps the photo, paints it); 0.25 lighter, 0.75 heavier. Multiplies the style "
                                  "weight by 0.1 at 0 and 10 at 1.", low=0.0, high=1.0, step=0.05, key="style_strength")

    def style_weight(self) -> float:
        """The style weight with the strength applied: even steps on a log scale, 0.5 → unchanged."""
        return self.style * STRENGTH_RANGE ** (2.0 * self.strength - 1.0)


@dataclass
class VideoOptions:
    """How a batch of frames is stylised as a video."""
    temporal: bool = option(True, "Video (a batch of frames): start each frame from the previous result moved "
                                  "along the optical flow, and keep it where the flow is reliable (much less "
                                  "flicker); a scene cut starts afresh.")
    flow: str = option("dis", "Video: how each frame follows the last. dis (OpenCV's DIS optical flow: fast) or "
                              "farneback follow every moving thing; shift follows one camera pan only.", choices=FLOWS)
    long_term: int = option(0, "Video: k > 1 also follows frames k, 2k and 4k back where the previous frame cannot "
                               "(things hidden for a while keep their paint); 0: the previous frame only.",
                            low=0, high=25)
    passes: int = option(1, "Video: passes over the clip, alternately backwards and forwards, each refining every "
                            "frame for the frame steps: steadier video, each pass adding about a later frame's time.",
                         low=1, high=20)
    frame_steps: int = option(0, "Video: iterations for every frame after the first, which starts from the "
                                 "previous result at full size (0: as many as the first frame's last scale).",
                              low=0, high=MAX_STEPS)
    scene_cut: float = option(0.3, "Video: a frame starts afresh when fewer than this fraction of its pixels "
                                   "follow the previous one.", low=0.0, high=1.0, cli=False)


@dataclass
class Options:
    size: int = option(512, "Long side of the output in px. Time grows with the square of the size.",
                       low=MIN_SIZE, high=MAX_SIZE, zero="the content's own size")
    steps: int = option(100, "Iterations at the first (coarsest) scale; each finer scale gets half as many "
                             "(at least 20).", low=1, high=MAX_STEPS)
    init: str = option("content", "Starting image: content (the photo: fast, faithful; noise for a texture), noise "
                                  "(more style, varies with the seed), style_mean (the painting's mean colour) or "
                                  "image (an image of your own).", choices=INITS)
    seed: int = option(0, "Seed of the noise that the noise and style_mean starts use.", low=0, high=2 ** 64 - 1)
    color: str = option("none", "Keep the photo's colours: luminance transfers the style on brightness only; "
                                "linear and histogram recolour the painting to the photo first; none keeps the "
                                "painting's colours.", choices=COLOR_MODES)
    style_loss: str = option("gram", "Which statistics of the painting are matched: gram (Gatys et al., the "
                                     "classic look), gram_deep_ms (Gram at the shallow layers, mean and spread at "
                                     "the deep ones: fewer of the painting's objects, lighter style), mean_std "
                                     "(per-channel mean and spread: colour and contrast, lighter texture), w2 (mean "
                                     "and covariance, Wasserstein), sliced_w (whole feature distributions: crisp "
                                     "textures; not with tiles).", choices=STYLE_LOSSES)
    seamless: bool = option(False, "Make the output tile without a seam (textures, patterns, game and 3D "
                                   "surfaces): the network sees it wrapped around, and its sides become multiples of "
                                   "16 px.")
    optimizer: str = option("lbfgs", "lbfgs converges in fewer steps (the classic choice); adam uses less "
                                     "memory.", choices=OPTIMIZERS)
    start_size: int = option(256, "Coarse to fine: the first scale's long side in px; sizes grow ×√2 up to the "
                                  "output size (at least the size: one scale only).",
                             low=MIN_SIZE, high=MAX_SIZE, zero="one scale only")
    precision: str = option("auto", "VGG arithmetic: auto uses bf16 on GPUs that support it and on CPUs with AMX, "
                                    "fp32 elsewhere; loss values add up in fp32 either way.", choices=PRECISIONS)
    tile_size: int = option(0, "For outputs too large for the device's memory: the network runs in tiles of at "
                               "most this many px while the whole image is optimised, so the result is the "
                               "untiled one, without seams. Slower (each tile is seen with up to 96 px of context, "
                               "twice): use large tiles.", low=MIN_TILE, high=MAX_SIZE, zero="no tiles")
    lr: float = option(0.02, "Adam's step size, in 0..1 pixel units.", low=1e-5, high=1.0, step=0.005)
    history_size: int = option(0, "L-BFGS memory in pairs; 0 picks a memory-aware default (20, fewer for huge "
                                  "images).", low=0, high=200)
    scale_ratio: float = option(math.sqrt(2.0), "Coarse to fine: each scale's long side over the previous one's.",
                                low=1.05, high=4.0, cli=False)
    step_decay: float = option(0.5, "Coarse to fine: each finer scale gets this fraction of the previous one's "
                                    "iterations.", low=0.01, high=1.0, cli=False)
    min_scale_steps: int = option(20, "Coarse to fine: the fewest iterations a scale gets.", low=1, high=MAX_STEPS,
                                  cli=False)
    scale_steps: Optional[Sequence[int]] = None   # explicit steps per scale (overrides the three above)
    precondition: bool = option(True, "L-BFGS: a spectral (1/frequency) initial Hessian, so that early steps move "
                                      "layout and colour areas as fast as fine detail.", cli=False)
    channels_last: str = option("auto", "Feature layout: auto uses channels_last on CUDA and CPUs (their fast "
                                        "layout), not on MPS.", choices=SWITCH, cli=False)
    cudnn_benchmark: Optional[bool] = None   # cuDNN's autotuner; None: as the host has it (it costs seconds per new size)
    tf32: bool = option(True, "TF32 matrix arithmetic on the CUDA GPUs that have it.", cli=False)
    cuda_graph: str = option("off", "Each iteration as one CUDA graph (a few eager ones first, then one launch an "
                                    "iteration); tiles, Adam and other devices run eagerly. auto and on use it "
                                    "where it can run (on says when it cannot); off until measured on a GPU.",
                             choices=SWITCH, cli=False)
    video: VideoOptions = field(default_factory=VideoOptions)


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
