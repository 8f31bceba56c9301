"""Seamless (periodic) outputs, which tile without a seam, and a measure of the seam.

What makes the optimised image periodic (``Options.seamless``):
- the network sees it wrapped around: circular padding in every VGG convolution (the 2×2 poolings
  need none, because sizes are multiples of ``PERIOD``, so every pooling window lies inside one period);
- the TV term also compares the last row and column with the first (``losses.tv_closed_form``);
- tiles take their context across the image's edges (``blocks``);
- a content photo, which is not periodic, counts less towards the edges (``edge_taper``), so the
  painting fills the seam, and a start made from it is made periodic first (``wrap_blend``).
The painting's statistics and the photo's features are computed as usual, with zero padding: they
are not periodic, and their wrap-around would add features that neither has.
"""
from __future__ import annotations

import contextlib
from typing import Tuple

import torch
from torch import nn

PERIOD = 16          # the stride of relu5_x: sizes that are multiples of it stay periodic at every layer
TAPER = 0.125        # the content weight ramps up over this fraction of the short side from each edge


def periodic_size(hw: Tuple[int, int]) -> Tuple[int, int]:
    """The nearest size whose sides are multiples of ``PERIOD``."""
    return tuple(max(PERIOD, int(s / PERIOD + 0.5) * PERIOD) for s in hw)   # halves round up


@contextlib.contextmanager
def circular_padding(model: nn.Module, on: bool = True):
    """Every convolution of ``model`` pads circularly inside the block (restored afterwards; the
    autograd graph keeps what each pass did, so a backward pass later is consistent)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)] if on else []
    old = [m.padding_mode for m in convs]
    for m in convs:
        m.padding_mode = "circular"
    try:
        yield
    finally:
        for m, mode in zip(convs, old):
            m.padding_mode = mode


def edge_taper(hw: Tuple[int, int], device=None) -> torch.Tensor:
    """``[H, W]`` in 0..1: 0 on the edges, rising linearly to 1 over ``TAPER`` of the short side."""
    ramp = max(1.0, TAPER * min(hw))
    ys = torch.arange(hw[0], device=device, dtype=torch.float32)
    xs = torch.arange(hw[1], device=device, dtype=torch.float32)
    dy = torch.minimum(ys, hw[0] - 1 - ys).clamp(max=ramp) / ramp
    dx = torch.minimum(xs, hw[1] - 1 - xs).clamp(max=ramp) / ramp
    return dy.view(-1, 1) * dx.view(1, -1)


def wrap_blend(image: torch.Tensor) -> torch.Tensor:
    """``image`` (``[.., H, W]``) made periodic: towards each edge it fades into itself shifted by half
    its size, whose pixels at the edges were neighbours in the image, so they continue across the wrap."""
    hw = tuple(image.shape[-2:])
    shifted = torch.roll(image, (hw[0] // 2, hw[1] // 2), dims=(-2, -1))
    w = edge_taper(hw, image.device).to(image.dtype)
    return image * w + shifted * (1 - w)


def resize_periodic(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resample a periodic image to ``size`` in the Fourier domain (its spectrum cut or padded with
    zeros): the result is periodic too, where interpolation would clamp at the edges."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    x = image.float()
    h, w = x.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    out = torch.zeros(x.shape[:-2] + tuple(size), dtype=spec.dtype, device=x.device)
    ch, cw = min(h, size[0]), min(w, size[1])
    sy, sx = (h - ch) // 2 + (h % 2 == 0 and ch % 2 == 1), (w - cw) // 2 + (w % 2 == 0 and cw % 2 == 1)
    dy, dx = (size[0] - ch) // 2 + (size[0] % 2 == 0 and ch % 2 == 1), (size[1] - cw) // 2 + (size[1] % 2 == 0 and cw % 2 == 1)
    out[..., dy:dy + ch, dx:dx + cw] = spec[..., sy:sy + ch, sx:sx + cw]
    y = torch.fft.ifft2(torch.fft.ifftshift(out, dim=(-2, -1))).real * (size[0] * size[1] / (h * w))
    return y.clamp(0, 1).to(image.dtype)


def seam_ratio(image: torch.Tensor) -> float:
    """How much the seams of ``image`` ([.., H, W]) tiled 2×2 stand out: the mean absolute difference
    between its last and first rows and columns, over the mean absolute difference of neighbouring
    pixels inside it. A seamless texture gives about 1; a photo tiled as it is, well above."""
    x = image.float()
    inside = torch.cat([(x[..., :, 1:] - x[..., :, :-1]).abs().flatten(),
                        (x[..., 1:, :] - x[..., :-1, :]).abs().flatten()]).mean()
    seam = torch.cat([(x[..., :, 0] - x[..., :, -1]).abs().flatten(),
                      (x[..., 0, :] - x[..., -1, :]).abs().flatten()]).mean()
    return float(seam / inside.clamp_min(1e-12))


def tiled_2x2(image: torch.Tensor) -> torch.Tensor:
    """``image`` repeated twice in each direction: how a seamless texture is used, and how to see a seam."""
    return image.repeat(*([1] * (image.dim() - 2)), 2, 2)
