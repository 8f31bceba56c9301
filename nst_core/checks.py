"""Checks of a run's inputs before it starts: each problem gets one message that names it and
says what to do (a run that cannot succeed never starts)."""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple

import torch

from .options import MAX_STEPS, MIN_SIZE, ContentTarget, LossWeights, Options, StyleTarget, StylizeError
from .spec import Spec, kind, specs
from .style_stats import statistic
from .vgg import check_layers


def check_mask(mask: Optional[torch.Tensor], hw: Tuple[int, int], what: str, image: str = "the content") -> None:
    """A mask of ``image``'s shape (``hw``): same aspect ratio, finite, not empty."""
    if mask is None:
        return
    if mask.dim() not in (2, 3, 4) or mask.shape[-1] < 1 or mask.shape[-2] < 1:
        raise StylizeError(f"{what} mask has shape {tuple(mask.shape)}; expected [H, W] or [N, H, W]")
    mh, mw = mask.shape[-2:]
    ar_m, ar_c = mw / mh, hw[1] / hw[0]
    if abs(math.log(ar_m / ar_c)) > 0.05:
        raise StylizeError(
            f"{what} mask is {mw}×{mh} but {image} is {hw[1]}×{hw[0]}: their aspect ratios differ, "
            f"so the mask would land on the wrong region. Resize or crop the mask to {image}'s shape.")
    if not bool(torch.isfinite(mask).all()):
        raise StylizeError(f"{what} mask contains NaN or infinite values; check the node or code that made it")
    if float(mask.max()) <= 0:
        raise StylizeError(f"{what} mask is empty (all zero): paint the region the style should cover")


MIN_SIDE = 16            # VGG's five poolings need this much of the short side
LAYER_WEIGHT = Spec("", low=0.0, high=1e6)   # normalised by their sum: only the ratios matter


# ---------------------------------------------------------------------------------------------
# Numbers as users type them: each check names the option, the value and the allowed range.

def real(value, name: str) -> float:
    """A finite real number (NaN and ±inf are refused: they make the loss NaN and the image black)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StylizeError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value):
        raise StylizeError(f"{name} is {value}; it must be a finite number")
    return float(value)


def integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StylizeError(f"{name} must be a whole number; got {value!r}")
    return int(value)


def one_of(value, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise StylizeError(f"unknown {name} {value!r}; use one of {', '.join(choices)}")
    return value


def check_value(value, spec: Spec, kind: type, name: str):
    """One option's value against its declaration: type, then range or choices."""
    if kind is bool:
        if not isinstance(value, bool):
            raise StylizeError(f"{name} must be on or off (True or False); got {value!r}")
        return value
    if spec.choices:
        return one_of(value, name, spec.choices)
    v = integer(value, name) if kind is int else real(value, name)
    if not (spec.zero and v == 0) and not spec.low <= v <= spec.high:
        raise StylizeError(f"{name} is {value}; use {spec.allowed()}")
    return v


def check_fields(obj, suffix: str = "") -> None:
    """Every declared option of a dataclass instance (``suffix`` names which one, e.g. " of style 2")."""
    for name, spec in specs(obj).items():
        check_value(getattr(obj, name), spec, kind(type(obj), name), spec.label(name) + suffix)


# ---------------------------------------------------------------------------------------------
# The dataclasses

def check_loss_weights(w: LossWeights) -> None:
    check_fields(w)


def check_style_numbers(styles: Sequence[StyleTarget]) -> None:
    """Blend weights and scales (not all weights zero): no images needed, so front ends can call it
    before loading anything."""
    for i, st in enumerate(styles):
        check_fields(st, f" of style {i + 1}")
    if styles and all(float(st.weight) == 0 for st in styles):
        raise StylizeError("every style weight is 0, so there is no style to transfer; give at least one "
                           "style a weight above 0")


def check_options(o: Options) -> None:
    check_fields(o)
    check_fields(o.video)
    if o.scale_steps is not None:
        for n in o.scale_steps:
            check_value(n, Spec("", low=1, high=MAX_STEPS), int, "each entry of scale steps")


def check_numbers(styles: Sequence[StyleTarget], weights: Optional[LossWeights], opts: Options) -> None:
    """Every number of a run, without its images or model (front ends call it before loading them)."""
    check_options(opts)
    check_style_numbers(styles)
    if weights is not None:
        check_loss_weights(weights)


# ---------------------------------------------------------------------------------------------
# Images

def check_image(img, what: str, channels: int = 3) -> None:
    """``[N, 3, H, W]`` with N ≥ 1, at least MIN_SIDE px a side, finite values in 0..1."""
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != channels:
        raise StylizeError(f"{what} must be [N, 3, H, W]; got {tuple(getattr(img, 'shape', ()))}")
    if img.shape[0] == 0:
        raise StylizeError(f"the {what} batch is empty; connect at least one image")
    if min(img.shape[-2:]) < MIN_SIDE:
        raise StylizeError(f"{what} is {img.shape[-1]}×{img.shape[-2]} px; it needs at least {MIN_SIDE} px a side")
    if not img.is_floating_point():
        raise StylizeError(f"{what} has integer values ({img.dtype}); convert it to float in 0..1 (divide by 255)")
    lo, hi = float(img.amin()), float(img.amax())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise StylizeError(f"{what} contains NaN or infinite values; check the node or code that made it")
    if lo < -0.01 or hi > 1.01:   # a little slack for resampling overshoot
        hint = " (divide by 255)" if hi > 2 else ""
        raise StylizeError(f"{what} has values from {lo:.3g} to {hi:.3g}; expected RGB in 0..1{hint}")


def check_output_shape(hw: Tuple[int, int], size: int) -> None:
    """The output the content's aspect ratio gives at ``size``: VGG needs MIN_SIDE px on its short side."""
    if size <= 0:
        return
    s = size / max(hw)
    oh, ow = round(hw[0] * s), round(hw[1] * s)
    if min(oh, ow) < MIN_SIDE:
        raise StylizeError(f"at size {size} the content ({hw[1]}×{hw[0]}) becomes {ow}×{oh} px, too thin "
                           f"for VGG; raise the size or crop the content")


def check_style_shapes(styles: Sequence[StyleTarget], content_hw: Tuple[int, int], opts: Options) -> None:
    """Each style image as the first (smallest) scale sees it, ``scale`` × that scale's long side,
    must keep MIN_SIDE px on its short side: a thin strip would leave VGG's pooling nothing to pool."""
    long_side = opts.size if opts.size > 0 else max(content_hw)
    first = 0.99 * opts.start_size if 0 < opts.start_size < long_side else long_side
    for i, st in enumerate(styles):
        h, w = st.image.shape[-2:]
        side = max(MIN_SIZE, round(first * st.scale))
        sh, sw = round(h * side / max(h, w)), round(w * side / max(h, w))
        if min(sh, sw) < MIN_SIDE:
            raise StylizeError(f"style image {i + 1} ({w}×{h}) becomes {sw}×{sh} px at the first scale, too "
                               "thin for VGG; crop it closer to square, or raise the style scale or start size")


def check_layer_weights(layers, what: str) -> None:
    """Layer dicts from library callers (the text parsers check theirs): finite weights ≥ 0, not all 0."""
    if not isinstance(layers, dict) or not layers:
        raise StylizeError(f"{what} layers must be a non-empty dict of layer name to weight; got {layers!r}")
    for name, w in layers.items():
        check_value(w, LAYER_WEIGHT, float, f"{what} layer weight of {name}")
    if all(float(w) == 0 for w in layers.values()):
        raise StylizeError(f"every {what} layer weight is 0; give at least one layer a weight above 0")


def check_texture(content: ContentTarget, opts: Options, weights: Optional[LossWeights] = None) -> None:
    """A texture has no photo: nothing to keep the colours or the edges of, and one canvas (not frames)."""
    if opts.color != "none":
        raise StylizeError(f"colour mode {opts.color!r} keeps a photo's colours, and a texture has no photo; "
                           "use colour none (the painting's colours)")
    if weights is not None and weights.photoreal > 0:   # its Laplacian of a blank canvas would flatten the texture
        raise StylizeError("the photorealism term keeps a photo's edges, and a texture has no photo; set the "
                           "photoreal weight to 0 (and leave out --photorealistic)")
    if content.image.shape[0] != 1:
        raise StylizeError("a texture canvas is one image; give one width and height")


def check_result(image: torch.Tensor) -> None:
    """A diverged run (NaN) would be saved as a black image: refuse it instead."""
    if not bool(torch.isfinite(image).all()):
        raise StylizeError("the optimisation diverged (the image became NaN or infinite), so nothing was "
                           "written; lower the loss weights or the learning rate, or use precision fp32")


def validate(model, content: ContentTarget, styles: Sequence[StyleTarget], opts: Options,
             weights: Optional[LossWeights] = None) -> None:
    """Everything a run is given, before it starts (``stylize`` calls it)."""
    if not styles:
        raise StylizeError("no style given; connect at least one style image")
    check_numbers(styles, weights, opts)
    if opts.tile_size > 0 and not statistic(opts.style_loss).tileable:
        raise StylizeError(f"the {opts.style_loss} style loss compares sorted features of the whole image, so it "
                           "cannot run in tiles; use style loss gram, mean_std or w2 with a tile size, or no tiles")
    check_fields(content, " of the content")
    img = content.image
    check_image(img, "content image")
    check_output_shape(tuple(img.shape[-2:]), opts.size)
    if opts.init == "image" and content.init_image is None:
        raise StylizeError("init is 'image' but no init image was given")
    if content.init_image is not None:
        check_image(content.init_image, "init image")
    if content.texture:
        check_texture(content, opts, weights)
    else:
        check_layer_weights(content.layers, "content")
        check_layers(model.arch, content.layers)
    check_mask(content.mask, tuple(img.shape[-2:]), "content")
    for i, st in enumerate(styles):
        check_image(st.image, f"style image {i + 1}")
    check_style_shapes(styles, tuple(img.shape[-2:]), opts)
    for i, st in enumerate(styles):
        check_layer_weights(st.layers, f"style {i + 1}")
        check_layers(model.arch, st.layers)
        check_mask(st.mask, tuple(img.shape[-2:]), f"style {i + 1}")
        check_mask(st.source_mask, tuple(st.image.shape[-2:]), f"style {i + 1} source", f"style image {i + 1}")
