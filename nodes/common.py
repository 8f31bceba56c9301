"""What the nodes share: the pack's socket types and category, inputs built from nst_core's option
declarations and checked with its checks, and conversions between ComfyUI's data and nst_core's.

ComfyUI: IMAGE ``[B, H, W, C]`` float 0..1, MASK ``[B, H, W]`` or ``[H, W]``; both usually
*inference tensors* (nodes run under ``torch.inference_mode()``), which autograd refuses to save.
nst_core: images ``[B, 3, H, W]`` RGB 0..1, masks ``[H, W]`` or ``[N, H, W]``.  Everything that
reaches nst_core is cloned here outside inference mode, so it is an ordinary tensor.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from comfy_api.latest import io

from ..nst_core import BACKGROUND, StylizeError, by_key, check_value, key_of, kind, spec_of
from ..nst_core import parse_layers as core_parse_layers

# Socket types of this pack (prefixed so they never clash with another pack's).
Model = io.Custom("NST_MODEL")
Content = io.Custom("NST_CONTENT")
Style = io.Custom("NST_STYLE")
Loss = io.Custom("NST_LOSS")
Settings = io.Custom("NST_SETTINGS")
Video = io.Custom("NST_VIDEO")

CATEGORY = "image/style transfer"   # with the stock image nodes, where people browse for them


class NeuralStyleError(ValueError):
    """Input the nodes cannot use; the message names the problem and what to do."""


def parse_layers(text: Optional[str], what: str) -> Dict[str, float]:
    """``"relu4_2"`` or ``"relu4_2:1, relu3_1:0.5"`` → ``{"relu4_2": 1.0, "relu3_1": 0.5}`` (nst_core's parser)."""
    try:
        return core_parse_layers(text, what)
    except ValueError as e:
        raise NeuralStyleError(str(e)) from None


def layers_problem(text: Optional[str], what: str):
    """For ``validate_inputs``: True when ``text`` parses, else the message (a str).

    ``None`` (the value comes from a link, known only at run time) is accepted here."""
    if text is None:
        return True
    try:
        parse_layers(text, what)
    except NeuralStyleError as e:
        return str(e)
    return True


# ---------------------------------------------------------------------------------------------
# Inputs from nst_core's option declarations: one text for the CLI's help and the node's tooltip,
# one range for the widget and the check.

Declared = Tuple[type, str]     # (an nst_core dataclass, one of its field names)


def declared_input(owner: type, name: str, default=None):
    """The widget of one declared option (its public name, default, range or choices, tooltip)."""
    spec, k, key = spec_of(owner, name), kind(owner, name), key_of(owner, name)
    value = getattr(owner, name) if default is None else default   # dataclass defaults are class attributes
    common = dict(default=value, tooltip=spec.describe(k))
    if k is bool:
        return io.Boolean.Input(key, **common)
    if spec.choices:
        return io.Combo.Input(key, options=list(spec.choices), **common)
    low = 0 if spec.zero else spec.low
    if k is int:
        return io.Int.Input(key, min=int(low), max=int(spec.high), control_after_generate=False, **common)
    step = spec.step or 0.01
    # The frontend rounds to the step's decimals unless told finer: a default of 1e-3 on a step of
    # 1e-4 would survive, a typed 1.5e-4 would not.
    finer = {"round": step / 10} if step < 0.01 else {}
    return io.Float.Input(key, min=low, max=spec.high, step=step, **finer, **common)


def declared_inputs(names: Iterable[Declared]) -> List:
    return [declared_input(owner, name) for owner, name in names]


def declared_values(owner: type, inputs: Dict[str, object]) -> Dict[str, object]:
    """``{field name: value}`` for the inputs (by public name) that are options of ``owner``."""
    names = by_key(owner)
    return {names[k]: v for k, v in inputs.items() if k in names}


def declared_problem(owners: Sequence[type], inputs: Dict[str, object]) -> Union[bool, str]:
    """For ``validate_inputs(**inputs)``: True when every declared option among the inputs is in range,
    else the first message (taking ``**inputs`` turns ComfyUI's own min/max check off, which never
    sees NaN; ``None`` is a linked value, checked when the node runs)."""
    for owner in owners:
        for name, value in declared_values(owner, inputs).items():
            if value is None:
                continue
            spec = spec_of(owner, name)
            try:
                check_value(value, spec, kind(owner, name), spec.label(name))
            except StylizeError as e:
                return str(e)
    return True


def image_to_core(image: torch.Tensor, what: str) -> torch.Tensor:
    """ComfyUI IMAGE ``[B, H, W, C]`` → ``[B, 3, H, W]`` float32 on the CPU, a fresh tensor.

    Grey (1 channel) becomes RGB; an alpha channel (grey+alpha, RGBA) is composited over white,
    as nst_core.load_image does for files: the RGB hidden under transparent pixels is never used."""
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4):
        raise NeuralStyleError(f"{what}: expected an IMAGE ([batch, height, width, channels]); "
                               f"got {type(image).__name__} {tuple(getattr(image, 'shape', ()))}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    b, h, w, c = image.shape
    if b == 0 or h == 0 or w == 0:
        raise NeuralStyleError(f"{what}: the image is empty ({tuple(image.shape)})")
    with torch.inference_mode(False):
        x = image.detach().to(device="cpu", dtype=torch.float32)
        if c not in (1, 2, 3, 4):
            raise NeuralStyleError(f"{what}: expected 1, 2, 3 or 4 channels; the image has {c}")
        if not bool(torch.isfinite(x).all()):
            raise NeuralStyleError(f"{what}: the image contains NaN or infinite values; check the node "
                                   "that made it")
        if c in (2, 4):
            alpha = x[..., -1:].clamp(0, 1)
            x = x[..., :-1].clamp(0, 1) * alpha + BACKGROUND * (1 - alpha)
        if x.shape[-1] == 1:
            x = x.expand(-1, -1, -1, 3)
        return x.permute(0, 3, 1, 2).clamp(0, 1).contiguous().clone()


def core_to_image(x: torch.Tensor, device) -> torch.Tensor:
    """``[B, 3, H, W]`` → ComfyUI IMAGE ``[B, H, W, 3]`` float32 on ``device``."""
    return x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).to(device).contiguous().clone()


def mask_to_core(mask: Optional[torch.Tensor], what: str) -> Optional[torch.Tensor]:
    """ComfyUI MASK ``[B, H, W]``/``[H, W]`` (``[B, H, W, 1]`` tolerated) → float32 CPU clone."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise NeuralStyleError(f"{what}: expected a MASK tensor, got {type(mask).__name__}")
    if mask.dim() == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.dim() not in (2, 3) or mask.shape[-1] < 1 or mask.shape[-2] < 1:
        raise NeuralStyleError(f"{what}: expected a MASK [height, width] or [batch, height, width]; "
                               f"got shape {tuple(mask.shape)}")
    with torch.inference_mode(False):
        m = mask.detach().to(device="cpu", dtype=torch.float32).clamp(0, 1).clone()
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    return m
