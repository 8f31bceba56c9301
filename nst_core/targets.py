"""Targets at one scale: the content's features and the styles' statistics.

A style image larger than the tile size is seen in blocks (``blocks.block_features``): its moment
sums add up exactly over the blocks' cores, so its memory is one block's however large it is.
Styles without a mask are blended into one target per layer, weighted by their weights.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

from . import color as colorlib
from .blocks import block_features
from .image import fit_size, resize
from .losses import resize_mask
from .options import MIN_SIZE, StyleTarget, StylizeError
from .seamless import edge_taper
from .style_stats import SlicedW, expectations, moment_sums
from .terms import ContentTerm, StyleTerm
from .vgg import layer_stride


def normalised(layers: Dict[str, float]) -> Dict[str, float]:
    """Layer weights scaled to sum to 1 (zero weights dropped)."""
    layers = {n: float(w) for n, w in layers.items() if float(w) != 0.0}
    tot = sum(abs(w) for w in layers.values())
    if not layers or tot == 0:
        raise StylizeError("no layers with a non-zero weight; give at least one layer, e.g. relu4_2")
    return {n: w / tot for n, w in layers.items()}


def pick_mask(mask: Optional[torch.Tensor], frame: int) -> Optional[torch.Tensor]:
    """The ``[H, W]`` mask for a frame from an ``[H, W]``, ``[N, H, W]`` or ``[N, 1, H, W]`` mask."""
    if mask is None:
        return None
    m = mask.float()
    if m.dim() == 4:
        m = m[:, 0]
    return m if m.dim() == 2 else m[min(frame, m.shape[0] - 1)]


def content_term(job, c_img: torch.Tensor, frame: int) -> ContentTerm:
    """The content term of one scale of one frame (``c_img``: the photo at that scale); none for a
    texture; seamless, the photo counts less towards the edges so the painting can fill the seam."""
    if job.content.texture:
        return ContentTerm({}, {}, 0.0)
    layers = normalised(job.content.layers)
    targets = content_features(job.model, job.as_seen(c_img), list(layers), job.memory_format,
                               job.tile_at(c_img.shape[-2:]))
    mask = pick_mask(job.content.mask, frame)
    if job.opts.seamless:
        taper = edge_taper(tuple(c_img.shape[-2:]), c_img.device)
        mask = taper if mask is None else resize_mask(mask, taper.shape).to(taper.device) * taper
    return ContentTerm(layers, targets, job.weights.content * job.content.weight, mask)


@torch.no_grad()
def content_features(model, image: torch.Tensor, layers: Sequence[str], memory_format, tile: int):
    """The content's features at each layer, whole-image sized, computed in blocks where tiled."""
    out = {}
    for b, feats in block_features(model, image, layers, memory_format, tile):
        for n in layers:
            s = layer_stride(n)
            f = feats[n][(...,) + b.local(s)]
            if n not in out:
                hw = (image.shape[-2] // s, image.shape[-1] // s)
                out[n] = torch.empty(f.shape[:2] + hw, dtype=f.dtype, device=f.device,
                                     memory_format=memory_format or torch.contiguous_format)
            out[n][(...,) + b.glob(s)] = f
    return out


@torch.no_grad()
def style_statistics(model, image: torch.Tensor, layers: Sequence[str], memory_format, tile: int, stat,
                     region: Optional[torch.Tensor] = None):
    """Per layer, the style image's moment expectations (or sorted projections for ``sliced_w``),
    averaged over the images of an ``[N, 3, H, W]`` batch; only over ``region`` (``[H, W]``, 0..1,
    the style image's part to take) where given."""
    masks = {n: None if region is None else resize_mask(region, _layer_hw(image, n)) for n in layers}
    per_image = []
    for i in range(image.shape[0]):
        acc: Dict[str, object] = {}
        for b, feats in block_features(model, image[i:i + 1], layers, memory_format, tile):
            for n in layers:
                s = layer_stride(n)
                f = feats[n][(...,) + b.local(s)]
                m = None if masks[n] is None else masks[n][b.glob(s)]
                if isinstance(stat, SlicedW):
                    acc.setdefault(n, []).append(stat.projections(f, m))
                else:
                    sums = moment_sums(f, None if m is None else m.reshape(-1), stat.needs)
                    acc[n] = sums if n not in acc else {k: acc[n][k] + v for k, v in sums.items()}
        if isinstance(stat, SlicedW):
            per_image.append({n: torch.cat(p).sort(0).values.t().contiguous() for n, p in acc.items()})
        else:
            per_image.append({n: expectations(t) for n, t in acc.items()})
    return _mix(per_image, [1.0] * len(per_image), stat)


def _layer_hw(image: torch.Tensor, name: str):
    s = layer_stride(name)
    return max(image.shape[-2] // s, 1), max(image.shape[-1] // s, 1)


def _mix(parts: List[Dict[str, object]], weights: List[float], stat) -> Dict[str, object]:
    """A weighted blend per layer: moment expectations averaged, or quantiles (sliced)."""
    total = sum(weights)
    out = {}
    for n in parts[0]:
        if isinstance(stat, SlicedW):
            out[n] = stat.blend([p[n] for p in parts], weights)
        else:
            out[n] = {k: sum(w / total * p[n][k] for p, w in zip(parts, weights)) for k in parts[0][n]}
    return out


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


def _prepared(stat, raw: Dict[str, object]) -> Dict[str, object]:
    if isinstance(stat, SlicedW):
        return raw
    if hasattr(stat, "prepare_layer"):   # a statistic that differs per layer
        return {n: stat.prepare_layer(n, e) for n, e in raw.items()}
    return {n: stat.prepare(stat.stat(e)) for n, e in raw.items()}


def style_terms(job, content_img: torch.Tensor, frame: int) -> List[StyleTerm]:
    """The style terms of one scale (``content_img`` is the content at that scale): unmasked styles
    blended into one term, each masked style a term of its own. With a tile size, a style image
    larger than it is seen in blocks too (a pass without a graph keeps only the tapped layers, so a
    style image somewhat larger than the output fits untiled)."""
    styles, stat = job.styles, job.stat
    out_long = max(content_img.shape[-2:])
    raw = [style_statistics(job.model, style_image_at(st, out_long, content_img, job.opts.color), list(st.layers),
                            job.memory_format, job.opts.tile_size, stat, pick_mask(st.source_mask, 0))
           for st in styles]
    terms = []
    unmasked = [(st, r) for st, r in zip(styles, raw) if st.mask is None]
    if unmasked:
        total_w = sum(max(st.weight, 0.0) for st, _ in unmasked)
        if total_w <= 0:
            raise StylizeError("all style weights are zero; give at least one style a positive weight")
        layer_w: Dict[str, float] = {}
        for st, _ in unmasked:
            for n, a in normalised(st.layers).items():
                layer_w[n] = layer_w.get(n, 0.0) + max(st.weight, 0.0) / total_w * a
        mixed = {}
        for n, lw in layer_w.items():
            parts = [(r, max(st.weight, 0.0) / total_w * normalised(st.layers).get(n, 0.0)) for st, r in unmasked]
            parts = [(r, w) for r, w in parts if w > 0]
            mixed[n] = _mix([{n: r[n]} for r, _ in parts], [w for _, w in parts], stat)[n]
        terms.append(StyleTerm(layer_w, _prepared(stat, mixed)))
    for st, r in zip(styles, raw):
        if st.mask is not None:
            terms.append(StyleTerm(normalised(st.layers), _prepared(stat, r), pick_mask(st.mask, frame),
                                   float(st.weight)))
    return terms
