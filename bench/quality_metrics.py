"""The quality benchmark's yardstick: content, style and structure distances of a stylised image.

Written here, independent of ``nst_core.losses`` (only the VGG19 network comes from
``nst_core.load_vgg()``), so a change to the training loss cannot move the ruler it is judged by.

- content   = ‖F(out) − F(photo)‖² / ‖F(photo)‖² at relu4_2 (relative squared distance; 0 = the photo)
- style     = mean over relu1_1…relu5_1 of ‖G(out) − G(painting)‖² / ‖G(painting)‖²,
              G = F Fᵀ / (H·W) (Gram averaged over positions), painting resized to the output's long side
- structure = Pearson correlation of the Sobel gradient magnitude of the luminance of output and photo, both
              area-downsampled to 128 px on the long side (1 = the photo's edges, ~0 = an unrelated image)
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
EDGE_LONG_SIDE = 128  # brush strokes blur away, the photo's outlines remain; the same at any output size


def load_rgb(path, size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """``[1, 3, H, W]`` RGB 0..1; resized to ``size`` (W, H) with PIL's antialiased bicubic if given."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != tuple(size):
            im = im.resize(tuple(size), Image.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)


def long_side_size(path, long_side: int) -> Tuple[int, int]:
    """(W, H) of the image at ``path`` scaled so its longer side is ``long_side``."""
    with Image.open(path) as im:
        w, h = im.size
    s = long_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def edge_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the Rec. 601 luminance, at EDGE_LONG_SIDE px on the long side."""
    y = (image[:, 0:1] * 0.299 + image[:, 1:2] * 0.587 + image[:, 2:3] * 0.114).float()
    h, w = y.shape[-2:]
    s = EDGE_LONG_SIDE / max(h, w)
    if s < 1:
        y = F.interpolate(y, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    y = F.pad(y, (1, 1, 1, 1), mode="replicate")
    return (F.conv2d(y, kx).pow(2) + F.conv2d(y, kx.transpose(2, 3)).pow(2)).sqrt()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def relative_sq(x: torch.Tensor, target: torch.Tensor) -> float:
    return float((x - target).pow(2).sum() / target.pow(2).sum())


class QualityMetric:
    """Scores images of one size against one photo and one painting (targets computed once)."""

    LAYERS = (CONTENT_LAYER,) + STYLE_LAYERS

    def __init__(self, model, photo: torch.Tensor, painting: torch.Tensor):
        self.model = model
        self.hw = tuple(photo.shape[-2:])
        with torch.no_grad():
            self.content_target = self.model(photo.float(), [CONTENT_LAYER])[CONTENT_LAYER].float()
            self.edges = edge_magnitude(photo)
            s = self.model(painting.float(), list(STYLE_LAYERS))
            self.grams = {n: gram(s[n].float()) for n in STYLE_LAYERS}

    def __call__(self, image: torch.Tensor) -> Dict[str, float]:
        if tuple(image.shape[-2:]) != self.hw:
            raise ValueError(f"image is {tuple(image.shape[-2:])}, the metric was built for {self.hw}")
        with torch.no_grad():
            f = self.model(image.float(), list(self.LAYERS))
            style = [relative_sq(gram(f[n].float()), self.grams[n]) for n in STYLE_LAYERS]
            return {
                "content": relative_sq(f[CONTENT_LAYER].float(), self.content_target),
                "style": float(np.mean(style)),
                "structure": pearson(edge_magnitude(image), self.edges),
            }


def metric_for(model, photo_path, painting_path, out_wh: Tuple[int, int]) -> QualityMetric:
    """The metric for outputs of size ``out_wh`` (W, H): photo resized to it, painting to its long side."""
    photo = load_rgb(photo_path, out_wh)
    painting = load_rgb(painting_path, long_side_size(painting_path, max(out_wh)))
    return QualityMetric(model, photo, painting)
