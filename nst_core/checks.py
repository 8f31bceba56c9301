"""Checks of a run's inputs before it starts: each problem gets one message that names it and
says what to do (a run that cannot succeed never starts)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

from .options import (COLOR_MODES, INITS, OPTIMIZERS, STYLE_LOSSES, ContentTarget, Options, StyleTarget,
                      StylizeError)
from .vgg import check_layers


def check_mask(mask: Optional[torch.Tensor], hw: Tuple[int, int], what: str) -> None:
    if mask is None:
        return
    if mask.dim() not in (2, 3, 4) or mask.shape[-1] < 1 or mask.shape[-2] < 1:
        raise StylizeError(f"{what} mask has shape {tuple(mask.shape)}; expected [H, W] or [N, H, W]")
    mh, mw = mask.shape[-2:]
    ar_m, ar_c = mw / mh, hw[1] / hw[0]
    if abs(math.log(ar_m / ar_c)) > 0.05:
        raise StylizeError(
            f"{what} mask is {mw}×{mh} but the content is {hw[1]}×{hw[0]}: their aspect ratios differ, "
            "so the mask would land on the wrong region. Resize or crop the mask to the content's shape.")
    if float(mask.max()) <= 0:
        raise StylizeError(f"{what} mask is empty (all zero): paint the region the style should cover")


def validate(model, content: ContentTarget, styles: Sequence[StyleTarget], opts: Options) -> None:
    img = content.image
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3:
        raise StylizeError(f"content image must be [B, 3, H, W]; got {tuple(getattr(img, 'shape', ()))}")
    if img.shape[0] == 0:
        raise StylizeError("the content batch is empty; connect at least one image")
    if min(img.shape[-2:]) < 16:
        raise StylizeError(f"content image is {img.shape[-1]}×{img.shape[-2]} px; it needs at least 16 px a side")
    if not styles:
        raise StylizeError("no style given; connect at least one style image")
    if opts.optimizer not in OPTIMIZERS:
        raise StylizeError(f"unknown optimizer {opts.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if opts.init not in INITS:
        raise StylizeError(f"unknown init {opts.init!r}; use one of {', '.join(INITS)}")
    if opts.init == "image" and opts.init_image is None:
        raise StylizeError("init is 'image' but no init image was given")
    if opts.color not in COLOR_MODES:
        raise StylizeError(f"unknown colour mode {opts.color!r}; use one of {', '.join(COLOR_MODES)}")
    if opts.style_loss not in STYLE_LOSSES:
        raise StylizeError(f"unknown style loss {opts.style_loss!r}; use one of {', '.join(STYLE_LOSSES)}")
    if opts.style_loss == "sliced_w" and opts.tile_size > 0:
        raise StylizeError("the sliced Wasserstein style loss compares sorted features of the whole image, so it "
                           "cannot run in tiles; use style loss gram, mean_std or w2 with a tile size, or no tiles")
    if 0 < opts.tile_size < 64:
        raise StylizeError(f"tile size {opts.tile_size} px is too small; use at least 64 px (0 turns tiling off)")
    check_layers(model.arch, content.layers)
    check_mask(content.mask, tuple(img.shape[-2:]), "content")
    for i, st in enumerate(styles):
        s = st.image
        if not isinstance(s, torch.Tensor) or s.dim() != 4 or s.shape[1] != 3 or s.shape[0] == 0:
            raise StylizeError(f"style image {i + 1} must be [N, 3, H, W] with N ≥ 1; got {tuple(getattr(s, 'shape', ()))}")
        if min(s.shape[-2:]) < 16:
            raise StylizeError(f"style image {i + 1} is {s.shape[-1]}×{s.shape[-2]} px; it needs at least 16 px a side")
        if not 0.05 <= st.scale <= 8:
            raise StylizeError(f"style scale {st.scale} is out of range; use 0.25–4")
        check_layers(model.arch, st.layers)
        check_mask(st.mask, tuple(img.shape[-2:]), f"style {i + 1}")
