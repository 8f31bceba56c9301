"""Exact tiled evaluation: the VGG pass in blocks, the optimiser on the whole image.

After Galerne et al., "Scaling Painting Style Transfer" (EGSR 2024). Only the network's
activations are held per block; the image, its gradient and the optimiser state stay whole:

1. each block (its core plus ``halo`` px of context) runs forward without a graph, and the
   moment sums of its core positions and its content term are added up over the blocks: the
   whole image's style statistics, exactly;
2. the style term and its gradient with respect to those sums come from the totals;
3. each block runs again with a graph, and the backward pass from its core positions (the same
   gradient injection as a whole image's, ``Objective.backward``) adds its share to the image's
   gradient.

The gradient is the untiled one up to what the halo cuts off: features near a block's core see
zero padding where the untiled pass sees more image (the geometry is in ``blocks``).
"""
from __future__ import annotations

import torch

from .blocks import add_crop, blocks, crop
from .objective import Objective, finish_terms


def evaluate_tiled(obj: Objective, x: torch.Tensor, tile: int, wrap: bool = False):
    """:meth:`Objective.evaluate` with the network run in blocks of at most ``tile`` px (``wrap``: the
    image is periodic, and blocks take their context across its edges)."""
    x = x.detach()
    bl = blocks(obj.hw, tile, wrap)
    sums, content = {}, torch.zeros((), device=x.device)
    with torch.no_grad():
        for b in bl:
            feats = obj.features(crop(x, b))
            for key, s in obj.block_sums(feats, b).items():
                if key in sums:
                    for k, v in s.items():
                        sums[key][k] += v
                else:
                    sums[key] = s
            content += obj.content_value(feats, b)
            del feats
    style, dsums = obj.style_from_sums(sums)
    grad = torch.zeros_like(x)
    for b in bl:
        xc = crop(x, b).clone().requires_grad_(True)
        obj.backward(obj.features(xc), b, dsums, {})
        add_crop(grad, b, xc.grad)
        del xc
    xg = x.clone().requires_grad_(True)
    pixel = obj.pixel(xg)
    sum(pixel.values()).backward()
    grad += xg.grad
    return grad, finish_terms(content, style, pixel)
