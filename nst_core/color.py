"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

- luminance-only transfer: style on the luminance channel, colour (chroma) from the content;
- colour matching of the style image to the content: ``linear`` (match mean and covariance in
  RGB) or ``histogram`` (match each channel's histogram).
"""
from __future__ import annotations

import torch

# YIQ (NTSC): Y is luminance, I/Q carry colour; the paper uses YIQ for luminance-only transfer.
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114],
                         [0.595716, -0.274453, -0.321263],
                         [0.211456, -0.522591, 0.311135]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB2YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _YIQ2RGB.to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` luma of an RGB 0..1 image."""
    return rgb_to_yiq(image)[:, :1]


def gray3(lum: torch.Tensor) -> torch.Tensor:
    """A luminance channel as a 3-channel grey RGB image (what the VGG sees in luminance mode)."""
    return lum.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_lum: torch.Tensor, content_lum: torch.Tensor) -> torch.Tensor:
    """Shift/scale the style's luminance to the content's mean and std (the paper's step)."""
    s_mu, s_sd = style_lum.mean(), style_lum.std().clamp_min(1e-5)
    c_mu, c_sd = content_lum.mean(), content_lum.std()
    return ((style_lum - s_mu) * (c_sd / s_sd) + c_mu).clamp(0, 1)


def combine_luminance(lum_image: torch.Tensor, color_source: torch.Tensor) -> torch.Tensor:
    """Luminance of ``lum_image`` (RGB or 1-channel) with the I/Q colour of ``color_source``."""
    y = lum_image if lum_image.shape[1] == 1 else luminance(lum_image)
    iq = rgb_to_yiq(color_source)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], 1)).clamp(0, 1)


def _sqrtm(c: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(c)
    vals = vals.clamp_min(1e-6)
    p = vals.rsqrt() if inverse else vals.sqrt()
    return vecs @ torch.diag(p) @ vecs.T


def match_color_linear(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``reference``'s.

    The 3×3 statistics are computed on the CPU in float64 (MPS has no float64) and the affine map
    is applied on the source's device."""
    eye = 1e-5 * torch.eye(3, dtype=torch.float64)
    r = reference[0].detach().reshape(3, -1).to("cpu", torch.float64)
    r_mu, r_sqrt = r.mean(1, keepdim=True), _sqrtm(torch.cov(r) + eye)
    out = []
    for img in source:
        s = img.reshape(3, -1)
        s64 = s.detach().to("cpu", torch.float64)
        s_mu = s64.mean(1, keepdim=True)
        t = r_sqrt @ _sqrtm(torch.cov(s64) + eye, inverse=True)
        shift = r_mu - t @ s_mu            # out = t·(s - s_mu) + r_mu = t·s + shift
        t, shift = t.to(s.device, torch.float32), shift.to(s.device, torch.float32)
        out.append(torch.addmm(shift, t, s.float()).reshape(img.shape).to(source.dtype))
    return torch.stack(out).clamp(0, 1)


def match_color_histogram(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram matching of ``source`` to ``reference`` (exact quantile mapping)."""
    out = torch.empty_like(source)
    for b in range(source.shape[0]):
        for c in range(3):
            s = source[b, c].reshape(-1)
            r, _ = reference[0, c].reshape(-1).sort()
            order = s.argsort()
            # rank of each source pixel → the reference value at the same quantile
            q = torch.linspace(0, r.numel() - 1, s.numel(), device=s.device).round().long()
            mapped = torch.empty_like(s)
            mapped[order] = r[q].to(s.dtype)
            out[b, c] = mapped.reshape(source.shape[-2:])
    return out.clamp(0, 1)


def match_color(source: torch.Tensor, reference: torch.Tensor, method: str = "linear") -> torch.Tensor:
    if method == "linear":
        return match_color_linear(source, reference)
    if method == "histogram":
        return match_color_histogram(source, reference)
    raise ValueError(f"unknown colour matching method {method!r}; use 'linear' or 'histogram'")
