"""The image a run starts from at its first scale (and a video frame that starts afresh)."""
from __future__ import annotations

import torch

from .image import resize
from .seamless import wrap_blend


def _noise(shape, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) % 2 ** 64)   # a seed near 2⁶⁴ plus the frame index wraps
    return torch.rand(shape, generator=g).to(device)


def initial_image(job, content: torch.Tensor, frame: int) -> torch.Tensor:
    """The start for ``job``'s init (``job.Job``) at the size of ``content``, the photo at this scale."""
    opts, device = job.opts, job.device
    hw = tuple(content.shape[-2:])
    if opts.init == "content" and not job.content.texture:
        return _periodic_if_seamless(job, content.clone())
    if opts.init in ("content", "noise"):   # a texture has no photo to start from
        return _noise((1, 3) + hw, opts.seed + frame, device)
    if opts.init == "style_mean":
        styles = job.styles
        mean = sum(st.image.to(device).float().mean((0, 2, 3)) * max(st.weight, 0) for st in styles)
        mean = mean / max(sum(max(st.weight, 0) for st in styles), 1e-8)
        return (mean.view(1, 3, 1, 1) + 0.1 * (_noise((1, 3) + hw, opts.seed + frame, device) - 0.5)).clamp(0, 1)
    init = job.content.init_image.to(device=device, dtype=torch.float32)
    return _periodic_if_seamless(job, resize(init[min(frame, init.shape[0] - 1):][:1], hw))


def _periodic_if_seamless(job, picture: torch.Tensor) -> torch.Tensor:
    """A picture's edges do not meet: a seamless run starts from it made periodic."""
    return wrap_blend(picture) if job.opts.seamless else picture
