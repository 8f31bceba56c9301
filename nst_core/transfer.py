"""The stylisation loop: targets per scale, the objective, L-BFGS/Adam, callbacks, frames.

Deviations from Gatys et al. (one line each):
- coarse-to-fine by default: the image is optimised at sizes growing ×√2 from ``start_size`` to
  ``size``, each warm-started from the previous one, with targets recomputed at every scale;
- the image is optimised in RGB 0..1 and projected back into range after every step;
- losses are relative and layer weights normalised (see ``losses``);
- styles without a mask are blended into one Gram target per layer, weighted by their weights;
- frames are warm-started from the previous stylised frame, moved by the global shift between the
  input frames, with a temporal loss where the input did not change (no optical flow); areas that
  enter the view start from the photo recoloured to the previous stylised frame's palette, and the
  previous frame fades into them over a few pixels (no seam).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from . import color as colorlib
from . import memory
from .checks import check_mask, validate
from .frames import follow_previous
from .image import fit_size, resize
from .options import (COLOR_MODES, DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, INITS, MIN_SIZE, OPTIMIZERS,
                      ContentTarget, Interrupted, LossWeights, Options, Result, StepInfo, StyleTarget, StylizeError)
from .lbfgs import LBFGS, spectral_preconditioner
from .losses import (CONTENT_SCALE, STYLE_SCALE, TV_SCALE, FusedGradient, content_loss, gram, relative_mse,
                     resize_mask, tv_loss)
from .vgg import VGGFeatures, check_layers, layer_stride

TILE_SWEEPS = 3   # tiled scales: visits per tile (see _optimise_tiled)
TILE_LOCAL = 0.15  # tiled scales: share of a tile's style term given to its own Gram (see Objective)
STYLE_TILE_HALO = 64  # px of context around each tile of a tiled style pass (see _tiled_grams)


# ---------------------------------------------------------------------------------------------
# Planning

def plan_scales(content_hw: Tuple[int, int], opts: Options) -> List[Tuple[Tuple[int, int], int]]:
    """[(size (H, W), steps)] from coarse to fine."""
    long_side = opts.size if opts.size > 0 else max(content_hw)
    if long_side < MIN_SIZE:
        raise StylizeError(f"output size {long_side} px is too small; use at least {MIN_SIZE} px")
    sides = [long_side]
    if 0 < opts.start_size < long_side:
        s = long_side
        while s / opts.scale_ratio >= opts.start_size * 0.99:
            s = s / opts.scale_ratio
            sides.insert(0, int(round(s)))
    if opts.scale_steps:
        steps = [int(n) for n in opts.scale_steps]
        if len(steps) != len(sides):
            raise StylizeError(f"scale_steps has {len(steps)} entries but the schedule has {len(sides)} "
                               f"scales ({', '.join(map(str, sides))} px)")
    else:
        steps = [max(opts.min_scale_steps if len(sides) > 1 else 1, int(round(opts.steps * opts.step_decay ** k)))
                 for k in range(len(sides))]
    plan = [(fit_size(content_hw, side), n) for side, n in zip(sides, steps)]
    for (h, w), _ in plan:
        if min(h, w) < 16:
            raise StylizeError(f"the content's aspect ratio gives a {w}×{h} px scale, too thin for VGG; "
                               "raise the size or start size")
    return plan


def default_history(numel: int, device: torch.device) -> int:
    """L-BFGS memory: 20 pairs (as good as 50 here, and the two-loop recursion is 2.5× cheaper),
    fewer where 20 would take more than 128 MB (2 fp32 vectors a pair), never fewer than 5.

    On the CPU that is 20 pairs up to ~600 px and 7 at 1024×768 px, where 20 would take 380 MB, a
    third of what a bf16 forward+backward needs (10 pairs instead of 20 cost ~0.6% of the loss
    after 100 iterations at 384 px, measured)."""
    budget = 128 << 20
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = max(budget, free // 16)
    return int(max(5, min(20, budget // (8 * numel))))


# ---------------------------------------------------------------------------------------------
# Targets and the objective

class LossLog:
    """The loss terms of every iteration, written on the run's device into one buffer per term
    (no host sync), made when the term is first seen.

    Not a list of 0-d tensors: each of those is a small allocation that lives as long as the run,
    and on the CPU glibc places it in a hole that one iteration's large buffers left, which the
    next iteration then cannot reuse, so the heap grew with every step (1024 px in 256 px tiles:
    RSS peak 1964 MB with a list, 914 MB with these buffers; 1448 px: 3220 MB, growing all run)."""

    def __init__(self, capacity: int, device):
        self.capacity = max(1, int(capacity))
        self.device = device
        self.buffers: Dict[str, torch.Tensor] = {}
        self.counts: Dict[str, int] = {}

    def add(self, terms: Dict[str, torch.Tensor]) -> None:
        for name, v in terms.items():
            buf, n = self.buffers.get(name), self.counts.get(name, 0)
            if buf is None:
                buf = self.buffers[name] = torch.empty(self.capacity, device=self.device)
            elif n == buf.numel():   # more iterations than planned: grow (not expected)
                buf = self.buffers[name] = torch.cat([buf, torch.empty_like(buf)])
            buf[n] = v
            self.counts[name] = n + 1

    def as_lists(self) -> Dict[str, List[float]]:
        return {k: b[:self.counts[k]].cpu().tolist() for k, b in self.buffers.items()}


def _pick(mask: Optional[torch.Tensor], frame: int) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    m = mask.float()
    if m.dim() == 4:            # [B, 1, H, W]
        m = m[:, 0]
    if m.dim() == 2:
        return m
    return m[min(frame, m.shape[0] - 1)]




class Objective:
    """Content + style + TV (+ temporal) loss at one scale, for one frame."""

    def __init__(self, model: VGGFeatures, content: torch.Tensor, content_t: ContentTarget,
                 styles: List[Tuple[Dict[str, float], Dict[str, torch.Tensor], Optional[torch.Tensor], float]],
                 weights: LossWeights, frame: int, memory_format,
                 temporal: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, content_mask=None):
        self.model, self.weights, self.memory_format = model, weights, memory_format
        hw = tuple(content.shape[-2:])
        # Tiles: per style term and layer, (mass-weighted Gram sum of the other tiles, their mass,
        # this tile's mass); None for a whole image.
        self.shared = None
        self.c_layers = _normalised(content_t.layers)
        self.style_terms = []   # (layer weights, target grams, norms, masks per layer or None, strength)
        for layers, grams, mask, strength in styles:
            masks = None
            if mask is not None:
                masks = {n: resize_mask(mask, _layer_hw(model, n, hw)) for n in layers}
            norms = {n: grams[n].pow(2).mean() for n in layers}
            self.style_terms.append((_normalised(layers), grams, norms, masks, strength))
        self.layers = sorted(set(self.c_layers) | {n for t in self.style_terms for n in t[0]},
                             key=lambda n: model.index[n])
        # Layers whose loss gradients can be fused into the backward (see FusedGradient): all but
        # the deepest, which the autograd graph must reach through a term of its own — its content
        # term if it has one (then its Grams can be fused), else its Gram.
        self.deepest = deepest = self.layers[-1]
        self.fusable = [n for n in self.layers if n != deepest or deepest in self.c_layers]   # in layer order
        self.fuse = True
        self.c_mask = None
        cm = _pick(content_t.mask, frame) if content_mask is None else content_mask
        if cm is not None:
            self.c_mask = {n: resize_mask(cm, _layer_hw(model, n, hw)) for n in self.c_layers}
        with torch.no_grad():
            feats = self.features(content)
        # Kept in the features' precision and layout (bf16 features are exact in bf16).
        self.c_targets = {n: feats[n].detach() for n in self.c_layers}
        self.c_norms = {n: t.float().pow(2).mean() for n, t in self.c_targets.items()}
        self.c_weight = weights.content * content_t.weight * CONTENT_SCALE
        self.temporal = temporal
        self.photoreal = None
        if weights.photoreal > 0:   # built once per scale from the content at that scale
            from .photoreal import laplacian_term
            self.photoreal = laplacian_term(content)

    def features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        return self.model(x, self.layers)

    def __call__(self, x: torch.Tensor):
        # TV first: autograd runs the nodes made last first, so its backward then comes after the
        # network's, when the activations are freed (made after them, it ran while all were alive).
        tv = tv_loss(x)
        feats = self.features(x)
        terms: Dict[str, torch.Tensor] = {}
        # Layers that deeper ones also consume get their losses' gradients through a fused hook
        # (see FusedGradient); the deepest layer stays in the autograd graph, which must reach it.
        fused = {}
        if self.fuse and torch.is_grad_enabled():
            fused = {n: FusedGradient(feats[n]) for n in self.fusable if feats[n].requires_grad}
        in_graph = False   # does a term in the graph reach the deepest layer?
        c = x.new_zeros((), dtype=torch.float32)
        for n, a in self.c_layers.items():
            m = self.c_mask[n] if self.c_mask else None
            if n in fused and n != self.deepest:
                c = c + a * fused[n].content(self.c_targets[n], self.c_weight * a, m, self.c_norms[n])
            else:
                c = c + a * content_loss(feats[n], self.c_targets[n], m, self.c_norms[n])
                in_graph = in_graph or n == self.deepest
        s = x.new_zeros((), dtype=torch.float32)
        style_w = self.weights.style * STYLE_SCALE
        fused_loss: Dict[str, torch.Tensor] = {}
        for i, (layers, grams, norms, masks, strength) in enumerate(self.style_terms):
            for n, a in layers.items():
                m = masks[n] if masks else None
                g = fused[n].gram(m) if n in fused else gram(feats[n], m)
                if self.shared is None:
                    term = relative_mse(g, grams[n], norm=norms[n])
                else:
                    # A tile: the Gram of the whole mosaic (this tile's and the others', weighted by their
                    # mass) must match the target. This is the whole image's objective restricted to the
                    # tile and divided by the tile's share of it (content is a mean over the tile).
                    o_sum, o_mass, mass = self.shared[i][n]
                    if mass <= 0:
                        continue
                    # TILE_LOCAL of the term asks the tile's own Gram to match too, so that no tile can
                    # serve the whole mosaic by gathering one of the style's features.
                    g_mix = (o_sum + mass * g) / (o_mass + mass)
                    term = ((1 - TILE_LOCAL) * (o_mass + mass) / mass * relative_mse(g_mix, grams[n], norm=norms[n])
                            + TILE_LOCAL * relative_mse(g, grams[n], norm=norms[n]))
                if n in fused:
                    fused_loss[n] = fused_loss.get(n, 0.0) + strength * a * term
                else:
                    s = s + strength * a * term
                    in_graph = in_graph or n == self.deepest
        for n, hook in fused.items():
            loss_n = fused_loss.get(n)
            hook.attach(None if loss_n is None else style_w * loss_n)
            if loss_n is not None:
                s = s + loss_n.detach()
        if fused and not in_graph:
            # No term of the deepest layer is in the graph (e.g. a tile outside every masked
            # region there): a zero term keeps the backward running through the network, so the
            # fused gradients of the shallower layers still arrive.
            s = s + 0.0 * feats[self.deepest].float().mean()
        terms["content"] = self.c_weight * c
        terms["style"] = style_w * s
        terms["tv"] = self.weights.tv * TV_SCALE * tv
        if self.temporal is not None:
            prev, mask = self.temporal
            terms["temporal"] = self.weights.temporal * (mask * (x - prev).pow(2)).mean()
        if self.photoreal is not None:
            terms["photoreal"] = self.weights.photoreal * self.photoreal(x)
        total = sum(terms.values())
        terms["total"] = total
        return total, terms


def _normalised(layers: Dict[str, float]) -> Dict[str, float]:
    layers = {n: float(w) for n, w in layers.items() if float(w) != 0.0}
    tot = sum(abs(w) for w in layers.values())
    if not layers or tot == 0:
        raise StylizeError("no layers with a non-zero weight; give at least one layer, e.g. relu4_2")
    return {n: w / tot for n, w in layers.items()}


def _layer_hw(model: VGGFeatures, name: str, hw) -> Tuple[int, int]:
    h, w = hw
    pools = int(name[4]) - (0 if name.startswith("pool") else 1)
    for _ in range(pools):
        h, w = h // 2, w // 2
    return max(h, 1), max(w, 1)


@torch.no_grad()
def style_grams(model: VGGFeatures, image: torch.Tensor, layers: Sequence[str], memory_format,
                tile: int = 0) -> Dict[str, torch.Tensor]:
    """Gram matrices of a style image (``[N, 3, H, W]``; several images are averaged).

    With ``tile`` > 0 an image larger than that is seen in tiles (see :func:`_tiled_grams`), so
    the memory needed is one tile's, however large the style image."""
    out = {n: 0 for n in layers}
    for i in range(image.shape[0]):
        x = image[i:i + 1]
        if tile > 0 and max(x.shape[-2:]) > tile:
            grams = _tiled_grams(model, x, layers, memory_format, tile)
        else:
            if memory_format is not None:
                x = x.contiguous(memory_format=memory_format)
            feats = model(x, layers)
            grams = {n: gram(feats[n]) for n in layers}
        for n in layers:
            out[n] = out[n] + grams[n] / image.shape[0]
    return out


def _tiled_grams(model: VGGFeatures, image: torch.Tensor, layers: Sequence[str], memory_format,
                 tile: int) -> Dict[str, torch.Tensor]:
    """The Grams of a ``[1, 3, H, W]`` image summed over tiles: each tile is run with
    ``STYLE_TILE_HALO`` px of context around it and contributes the positions of its own area.
    Tile edges lie on multiples of the deepest layer's stride, so every layer's grid is cut
    exactly; only features near a tile edge that see further than the halo can differ from the
    untiled pass's (with 64 px, the Grams of the default layers match it to 1e-8, relative mean
    square, measured at 1024 px in 256 and 512 px tiles)."""
    q = max(layer_stride(n) for n in layers)
    step = max(q, tile // q * q)
    halo = -(-STYLE_TILE_HALO // q) * q
    h, w = image.shape[-2:]
    sums: Dict[str, torch.Tensor] = {}
    counts = {n: 0 for n in layers}
    for y0 in range(0, h, step):
        for x0 in range(0, w, step):
            py0, px0 = max(0, y0 - halo), max(0, x0 - halo)
            crop = image[..., py0:min(h, y0 + step + halo), px0:min(w, x0 + step + halo)]
            if memory_format is not None:
                crop = crop.contiguous(memory_format=memory_format)
            feats = model(crop, layers)
            for n in layers:
                s = layer_stride(n)
                f = feats[n][..., (y0 - py0) // s:(min(h, y0 + step) - py0) // s,
                             (x0 - px0) // s:(min(w, x0 + step) - px0) // s]
                positions = f.shape[-2] * f.shape[-1]
                if positions == 0:
                    continue
                sums[n] = sums.get(n, 0) + gram(f) * positions
                counts[n] += positions
            del feats
    return {n: sums[n] / counts[n] for n in layers}


def style_image_at(st: StyleTarget, out_long: int, content_img: torch.Tensor, color: str) -> torch.Tensor:
    """The style image as the VGG sees it at one scale: recoloured if asked, long side = out_long × scale."""
    img = st.image.to(device=content_img.device, dtype=torch.float32)
    if color in ("linear", "histogram"):
        img = colorlib.match_color(img, content_img[:1], color)
    if color == "luminance":
        lum = colorlib.match_luminance(colorlib.luminance(img), colorlib.luminance(content_img[:1]))
        img = colorlib.gray3(lum)
    side = max(MIN_SIZE, int(round(out_long * st.scale)))
    return resize(img, fit_size(tuple(img.shape[-2:]), side))


def blend_styles(model, styles: Sequence[StyleTarget], out_long: int, frame: int, content_img: torch.Tensor,
                 color: str, memory_format, tile: int = 0):
    """Style terms for one scale: unmasked styles blended into one target, masked ones separate.
    Style images larger than ``tile`` px (if > 0) are seen in tiles (:func:`style_grams`)."""
    per_style = []
    for st in styles:
        img = style_image_at(st, out_long, content_img, color)
        grams = style_grams(model, img, list(st.layers), memory_format, tile)
        per_style.append((st, grams))
    terms = []
    unmasked = [(st, g) for st, g in per_style if st.mask is None]
    if unmasked:
        total_w = sum(max(st.weight, 0.0) for st, _ in unmasked)
        if total_w <= 0:
            raise StylizeError("all style weights are zero; give at least one style a positive weight")
        layer_w: Dict[str, float] = {}
        target: Dict[str, torch.Tensor] = {}
        for st, g in unmasked:
            for n, a in st.layers.items():
                wa = max(st.weight, 0.0) / total_w * float(a)
                if wa == 0:
                    continue
                layer_w[n] = layer_w.get(n, 0.0) + wa
                target[n] = target.get(n, 0) + wa * g[n]
        target = {n: t / layer_w[n] for n, t in target.items()}
        terms.append((layer_w, target, None, 1.0))
    for st, g in per_style:
        if st.mask is not None:
            terms.append((dict(st.layers), g, _pick(st.mask, frame), float(st.weight)))
    return terms


# ---------------------------------------------------------------------------------------------
# Devices and precision

@contextlib.contextmanager
def device_settings(device: torch.device, opts: Options):
    """cuDNN benchmark and TF32 on CUDA for the duration of a run (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = opts.cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = opts.tf32
    torch.backends.cudnn.allow_tf32 = opts.tf32
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = old


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX tiles (Xeon Sapphire Rapids and later), where oneDNN runs bf16
    convolutions several times faster than fp32 (6× for VGG19 at 512 px measured here)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported()) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:   # private APIs: a torch without them gets fp32
        return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` → bf16 on CUDA GPUs that support it and on CPUs with AMX, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def _reduced_dtype(precision: str) -> torch.dtype:
    """bf16/fp16 → their dtype; anything else is refused with the valid choices."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        raise StylizeError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    return dtype


def runtime_model(model: VGGFeatures, device: torch.device, opts: Options):
    """The model as the loop runs it: for fp32 the model itself; for bf16/fp16 a copy with its
    weights cast once (and laid out channels_last when that is on) instead of autocast, which
    would recast every weight at every pass (~10 ms a pass on the CPU). The copy is kept on the
    model for the next run with the same settings."""
    precision = resolve_precision(device, opts.precision)
    if precision == "fp32":
        return model
    dtype = _reduced_dtype(precision)
    fmt = memory_format_for(device, opts.channels_last)
    key = (dtype, fmt, str(device))
    cached = getattr(model, "_runtime_copy", None)
    if cached is None or cached[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            # Built on the meta device and filled from the model: no fp32 random init to throw away.
            with torch.device("meta"):
                copy = VGGFeatures(model.arch, model.pooling, model.convention)
            copy = copy.to(dtype=dtype).to_empty(device=device)
            copy.load_state_dict(model.state_dict())
            # The input normalisation stays fp32 (the image is normalised, then cast; see VGGFeatures).
            copy.register_buffer("mean", model.mean.detach().to(device).clone(), persistent=False)
            copy.register_buffer("std", model.std.detach().to(device).clone(), persistent=False)
            copy.source = model.source
            if fmt is not None:
                copy = copy.to(memory_format=fmt)
        object.__setattr__(model, "_runtime_copy", (key, copy))   # a plain attribute, not a submodule
        cached = (key, copy)
    return cached[1]


def drop_runtime_copy(model: VGGFeatures) -> None:
    """Free the reduced-precision copy :func:`runtime_model` keeps (e.g. before the GPU is reused)."""
    object.__setattr__(model, "_runtime_copy", None)


def memory_format_for(device: torch.device, setting: str):
    """``auto`` → channels_last on CUDA and CPU (cuDNN's and oneDNN's fast layout), not on MPS."""
    on = device.type in ("cuda", "cpu") if setting == "auto" else setting == "on"
    return torch.channels_last if on else None


# ---------------------------------------------------------------------------------------------
# Frames: global shift between consecutive inputs (phase correlation) for warm starts







# ---------------------------------------------------------------------------------------------
# The loop

def _noise(shape, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(shape, generator=g).to(device)


def stylize(model: VGGFeatures, content: ContentTarget, styles: Sequence[StyleTarget],
            weights: Optional[LossWeights] = None, opts: Optional[Options] = None,
            callback: Optional[Callable[[StepInfo], Optional[bool]]] = None,
            interrupt: Optional[Callable[[], None]] = None) -> Result:
    """Optimise an image (or each frame of a batch) to have ``content``'s content and ``styles``' style.

    Runs on the model's device. ``callback(info)`` runs after every iteration; returning True
    stops the run (``Interrupted`` is raised with the current image). ``interrupt()`` is called
    before every evaluation of the loss (inside the optimiser step); it may raise to cancel.
    """
    weights = weights or LossWeights()
    opts = opts or Options()
    validate(model, content, styles, opts)
    device = next(model.parameters()).device
    frames = content.image.to(device=device, dtype=torch.float32)
    n_frames = frames.shape[0]
    plan = plan_scales(tuple(frames.shape[-2:]), opts)
    later_steps = opts.frame_steps or plan[-1][1]
    def iters(p):
        return sum(n * _n_tiles(opts, hw) for hw, n in p)
    total = iters(plan) + (n_frames - 1) * (iters([(plan[-1][0], later_steps)]) if opts.temporal else iters(plan))
    memory_format = memory_format_for(device, opts.channels_last)
    model = runtime_model(model, device, opts)
    history = LossLog(total, device)
    counter = [0]
    outputs = []
    scale_starts: List[int] = []
    _check_memory(opts, device, plan)
    with device_settings(device, opts), torch.enable_grad():
        prev_out = prev_in = None
        for t in range(n_frames):
            frame = frames[t:t + 1]
            if t > 0 and opts.temporal:
                frame_plan = [(plan[-1][0], later_steps)]
            else:
                frame_plan = plan
            x = None
            for k, (hw, steps) in enumerate(frame_plan):
                c_img = resize(frame, hw)
                temporal = None
                if t > 0 and opts.temporal:
                    warped, valid, tmask = follow_previous(prev_in, prev_out, c_img)
                    if opts.init != "content":
                        base = _init(opts, c_img, styles, t, device)
                    else:   # areas entering the view: the photo in the stylised frame's colours
                        base = colorlib.match_color(c_img, prev_out, "linear")
                    x = _as_seen(warped * valid + base * (1 - valid), opts)
                    temporal = (warped.detach(), tmask.detach())
                color_src = c_img
                c_eff = _as_seen(c_img, opts)
                # A style image larger than the scale (style_scale > 1), or than the tile size, is
                # seen in tiles: its pass never needs more memory than the optimisation's.
                terms = blend_styles(model, styles, max(hw), t, c_img, opts.color, memory_format,
                                     opts.tile_size if opts.tile_size > 0 else max(hw))
                tiled = _tiled(opts, hw)
                if not tiled:
                    obj = Objective(model, c_eff, content, terms, weights, t, memory_format, temporal)
                if x is None:
                    x = _as_seen(_init(opts, c_eff, styles, t, device), opts)
                elif tuple(x.shape[-2:]) != hw:
                    x = resize(x, hw)
                if t == 0:
                    scale_starts.append(counter[0])
                try:
                    if tiled:
                        x = _optimise_tiled(model, c_eff, content, terms, weights, t, memory_format, x,
                                            steps, opts, device, callback, interrupt, history, counter, total, k,
                                            len(frame_plan), hw, t, n_frames, color_src, temporal)
                    else:
                        x = _optimise(obj, x.detach().clone(), steps, opts, device, callback, interrupt, history,
                                      counter, total, k, len(frame_plan), hw, t, n_frames, color_src)
                        del obj
                except torch.OutOfMemoryError:
                    raise StylizeError(
                        f"out of memory on {device} at {hw[1]}×{hw[0]} px. Lower the output size, set a tile size "
                        f"(e.g. {max(256, max(hw) // 2)}) to optimise in tiles, lower the L-BFGS history, or use "
                        "bf16 precision on a GPU.") from None
                del terms
            out = colorlib.combine_luminance(x, color_src) if opts.color == "luminance" else x
            prev_out, prev_in = x.detach(), frame
            outputs.append(out.detach())
    hist = history.as_lists()
    return Result(torch.cat(outputs), hist, scale_starts, [hw for hw, _ in plan])


def _as_seen(image: torch.Tensor, opts: Options) -> torch.Tensor:
    """The image as the optimiser works on it: grey luminance in luminance mode, else as it is."""
    return colorlib.gray3(colorlib.luminance(image)) if opts.color == "luminance" else image




def _check_memory(opts: Options, device: torch.device, plan) -> None:
    """On the CPU, refuse a run estimated to need more memory than the system has available: past
    that, Linux's out-of-memory killer ends the whole process (ComfyUI with it) instead of an
    error. GPUs raise an out-of-memory error, which the loop turns into a message."""
    if device.type != "cpu":
        return
    avail = memory.available_memory()
    if avail is None:
        return
    h, w = plan[-1][0]
    reduced = resolve_precision(device, opts.precision) != "fp32"
    tile = opts.tile_size if _tiled(opts, (h, w)) else 0
    need = memory.run_need(h * w, reduced, tile)
    if need <= avail:
        return
    def amount(n):
        return f"{n / 1024 ** 3:.1f} GB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.0f} MB"
    what = f"in {tile} px tiles " if tile else ""
    fit = memory.largest_tile(avail, reduced, h * w)
    if fit:
        hint = f"Set a {'smaller ' if tile else ''}tile size (about {fit} px) to optimise in tiles, or lower the output size"
    else:
        hint = "Lower the output size"
    if not reduced:
        hint += ", or use bf16 precision (about half the memory)"
    raise StylizeError(
        f"a {w}×{h} px run {what}on the CPU needs about {amount(need)} of memory and "
        f"{amount(avail)} is available. {hint}.")




def _init(opts: Options, content: torch.Tensor, styles: Sequence[StyleTarget], frame: int, device) -> torch.Tensor:
    hw = tuple(content.shape[-2:])
    if opts.init == "content":
        return content.clone()
    if opts.init == "noise":
        return _noise((1, 3) + hw, opts.seed + frame, device)
    if opts.init == "style_mean":
        mean = sum(st.image.to(device).float().mean((0, 2, 3)) * max(st.weight, 0) for st in styles)
        mean = mean / max(sum(max(st.weight, 0) for st in styles), 1e-8)
        return (mean.view(1, 3, 1, 1) + 0.1 * (_noise((1, 3) + hw, opts.seed + frame, device) - 0.5)).clamp(0, 1)
    init = opts.init_image.to(device=device, dtype=torch.float32)
    return resize(init[min(frame, init.shape[0] - 1):][:1], hw)


def _tiled(opts: Options, hw) -> bool:
    return opts.tile_size > 0 and max(hw) > opts.tile_size


def _n_tiles(opts: Options, hw) -> int:
    return len(tile_boxes(hw, opts.tile_size, max(16, opts.tile_size // 4))) if _tiled(opts, hw) else 1


def tile_boxes(hw: Tuple[int, int], tile: int, overlap: int) -> List[Tuple[int, int, int, int]]:
    """Overlapping (y, x, h, w) boxes covering ``hw``, each at most ``tile`` px a side."""
    def starts(n):
        if n <= tile:
            return [0]
        k = math.ceil((n - overlap) / (tile - overlap))
        step = (n - tile) / (k - 1)
        return [int(round(i * step)) for i in range(k)]
    return [(y, x, min(tile, hw[0]), min(tile, hw[1])) for y in starts(hw[0]) for x in starts(hw[1])]


def _feather(h: int, w: int, box, hw, overlap: int, device) -> torch.Tensor:
    """Blend weights for a tile: linear ramps over the overlap on sides that have a neighbour."""
    y, x = box[0], box[1]
    ry = torch.ones(h, device=device)
    rx = torch.ones(w, device=device)
    ramp = torch.linspace(0, 1, overlap + 2, device=device)[1:-1] if overlap > 0 else None
    if ramp is not None:
        if y > 0:
            ry[:overlap] = ramp
        if y + h < hw[0]:
            ry[-overlap:] = torch.minimum(ry[-overlap:], ramp.flip(0))
        if x > 0:
            rx[:overlap] = ramp
        if x + w < hw[1]:
            rx[-overlap:] = torch.minimum(rx[-overlap:], ramp.flip(0))
    return (ry[:, None] * rx[None, :])[None, None]


def _optimise_tiled(model, c_eff, content_t: ContentTarget, terms, weights, frame, memory_format,
                    x: torch.Tensor, steps: int, opts: Options, device, callback, interrupt, history, counter,
                    total, k, n_scales, hw, t, n_frames, color_src, temporal=None) -> torch.Tensor:
    """One scale in overlapping tiles (block coordinate descent on the whole image's objective).

    Each tile is warm-started from the image so far and optimised so that the Gram of the whole
    mosaic — its own plus the other tiles' current statistics — matches the style targets: the
    tiles share one set of style statistics and cannot drift apart, and a sky tile need not hold
    every stroke of the painting (a small share, ``TILE_LOCAL``, of each tile's style term is its
    own Gram's: without it one tile could gather a colour of the painting for the whole mosaic).
    A tile's statistics are weighted by its blend weights, so the mosaic's add up to about the
    whole image's. The tiles are visited in ``TILE_SWEEPS`` rounds, each with a share of the
    scale's steps (a fresh L-BFGS per visit, statistics updated after each).
    Overlaps are feathered, so no seams show. Memory: one tile's activations plus a few Gram
    matrices per tile."""
    tile = opts.tile_size
    overlap = max(16, tile // 4)
    boxes = tile_boxes(hw, tile, overlap)
    x = x.detach().clone()
    c_mask_full = _pick(content_t.mask, frame)
    if c_mask_full is not None:
        c_mask_full = resize_mask(c_mask_full, hw)
    full_masks = [None if m is None else resize_mask(m, hw) for (_, _, m, _) in terms]

    # Blend weights per tile: for the mosaic after each visit, and to weight the tile's statistics
    # (and its content term), so an overlap counts about once in the mosaic (not once per tile)
    # and the tiles' borders, where the padding distorts the features, count least.
    feathers = [_feather(b[2], b[3], b, hw, overlap, device) for b in boxes]

    def tile_objective(box, wgt):
        y0, x0, h, w = box
        sl = (..., slice(y0, y0 + h), slice(x0, x0 + w))
        feather = wgt[0, 0]
        tterms = [(layers, grams, feather if fm is None else fm[sl[1:]] * feather, strength)
                  for (layers, grams, _, strength), fm in zip(terms, full_masks)]
        cm = feather if c_mask_full is None else c_mask_full[sl[1:]] * feather
        # A later video frame: the temporal term on the tile's part of the warped previous frame,
        # weighted by the blend weights like the content term.
        tt = None if temporal is None else (temporal[0][sl], temporal[1][sl] * feather)
        return Objective(model, c_eff[sl], content_t, tterms, weights, frame, memory_format, tt,
                         content_mask=cm)

    def tile_stats(obj, img, into=None):
        """Per style term and layer: (mass·Gram, mass) of a tile's current image, written into the
        tensors of ``into`` (the tile's previous statistics) where given."""
        with torch.no_grad():
            feats = obj.features(img)
            out = []
            for ti, (layers, _, _, masks, _) in enumerate(obj.style_terms):
                d = {}
                for n in layers:
                    m = masks[n] if masks else None
                    mass = float(feats[n].shape[-2] * feats[n].shape[-1]) if m is None else float(m.sum())
                    g = gram(feats[n], m).mul_(mass) if mass > 0 else 0.0
                    old = None if into is None else into[ti][n][0]
                    d[n] = (old.copy_(g) if torch.is_tensor(old) and torch.is_tensor(g) else g, mass)
                out.append(d)
        return out

    # Every long-lived tensor of the scale is made here, before the first visit; the visits only
    # write into them. (New statistics on every visit, made between a tile's large transient
    # buffers, fragmented the heap: the RSS of a 4096 px run in 512 px tiles grew by 1.1 GB
    # during the first round of visits.)
    objs = [tile_objective(box, wgt) for box, wgt in zip(boxes, feathers)]
    stats = [tile_stats(o, x[..., b[0]:b[0] + b[2], b[1]:b[1] + b[3]]) for o, b in zip(objs, boxes)]
    # The other tiles' statistics, for the tile being visited: one set of sums, refilled per visit.
    others = [{n: torch.zeros_like(grams[n]) for n in layers} for layers, grams, _, _, _ in objs[0].style_terms]
    # The scale's steps are split over TILE_SWEEPS visits per tile: in a single sweep the first tiles,
    # seeing the others' statistics still far from the target, over-correct (style loss 2.7× the
    # untiled run's at 512 px in 256 px tiles; 1.9× with three sweeps).
    visits = [(i, box, steps // TILE_SWEEPS + (1 if r < steps % TILE_SWEEPS else 0))
              for r in range(TILE_SWEEPS) for i, box in enumerate(boxes)]
    for i, box, n_steps in visits:
        if n_steps <= 0:
            continue
        y0, x0, h, w = box
        obj = objs[i]
        obj.shared = []
        for ti, (layers, _, _, _, _) in enumerate(obj.style_terms):
            d = {}
            for n in layers:
                acc, mass = others[ti][n].zero_(), 0.0
                for j, s in enumerate(stats):
                    if j != i:
                        if torch.is_tensor(s[ti][n][0]):
                            acc.add_(s[ti][n][0])
                        mass += s[ti][n][1]
                d[n] = (acc, mass, stats[i][ti][n][1])
            obj.shared.append(d)
        xt = x[..., y0:y0 + h, x0:x0 + w].clone()
        xt = _optimise(obj, xt, n_steps, opts, device, callback, interrupt, history, counter, total, k, n_scales,
                       hw, t, n_frames, color_src, shown_full=(x, box))
        obj.shared = None
        wgt = feathers[i]
        x[..., y0:y0 + h, x0:x0 + w] = x[..., y0:y0 + h, x0:x0 + w] * (1 - wgt) + xt * wgt
        stats[i] = tile_stats(obj, x[..., y0:y0 + h, x0:x0 + w], into=stats[i])
    del objs
    return x


def _optimise(obj: Objective, x: torch.Tensor, steps: int, opts: Options, device, callback, interrupt,
              history, counter, total, k, n_scales, hw, t, n_frames, color_src, shown_full=None) -> torch.Tensor:
    x.requires_grad_(True)
    if opts.optimizer == "lbfgs":
        opt = LBFGS(x, history_size=opts.history_size or default_history(x.numel(), device),
                    precondition=spectral_preconditioner(x.shape) if opts.precondition else None)
    else:
        opt = torch.optim.Adam([x], lr=opts.lr)

    def shown() -> torch.Tensor:
        img = x.detach()
        if shown_full is not None:  # a tile: show it in place in the whole image
            full, (y0, x0, h, w) = shown_full
            img, full_img = full.clone(), img
            img[..., y0:y0 + h, x0:x0 + w] = full_img
        return colorlib.combine_luminance(img, color_src) if opts.color == "luminance" else img.clone()

    for _ in range(steps):
        if interrupt is not None:
            interrupt()
        if opts.optimizer == "lbfgs":
            loss, terms = obj(x)
            (g,) = torch.autograd.grad(loss, x)
            opt.step(g)
        else:
            opt.zero_grad(set_to_none=True)
            loss, terms = obj(x)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        # Drop the graph now, not at the next evaluation, so two iterations' buffers never overlap.
        terms = {n: v.detach() for n, v in terms.items()}
        del loss
        counter[0] += 1
        history.add(terms)
        if callback is not None:
            info = StepInfo(counter[0], total, k, n_scales, hw, t, n_frames, dict(terms), shown)
            if callback(info):
                raise Interrupted(shown())
    return x.detach()
