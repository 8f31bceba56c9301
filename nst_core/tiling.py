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
zero padding where the untiled pass sees more image. Block edges lie on multiples of ``ALIGN``,
the largest stride of the tapped layers, so every layer's grid is cut exactly.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Tuple

import torch

from .objective import Block, Objective, finish_terms

ALIGN = 16   # stride of relu5_x, the deepest layers used
HALO = 96    # px of context around a block's core: the gradient within 1e-6 of the untiled one at 512 px (64: 2e-3)


def halo_for(tile: int) -> int:
    """The context around each core: ``HALO``, less for small tiles (at most a third of the tile)."""
    return max(ALIGN, min(HALO, tile // 3 // ALIGN * ALIGN))


def blocks(hw: Tuple[int, int], tile: int) -> List[Block]:
    """Blocks whose crops (core + halo) are at most ``tile`` px a side and whose cores tile ``hw``."""
    halo = halo_for(tile)
    core = max(ALIGN, (tile - 2 * halo) // ALIGN * ALIGN)

    def spans(n: int) -> List[Tuple[int, int, int, int]]:
        out = []
        for a in range(0, n, core):
            b = n if a + core >= n else a + core
            out.append((max(0, a - halo), min(n, b + halo), a, b))
            if b == n:
                break
        return out
    return [Block((cy0, cy1, cx0, cx1), (y0, y1, x0, x1))
            for cy0, cy1, y0, y1 in spans(hw[0]) for cx0, cx1, x0, x1 in spans(hw[1])]


def crop(image: torch.Tensor, block: Block) -> torch.Tensor:
    y0, y1, x0, x1 = block.crop
    return image[..., y0:y1, x0:x1]


def block_features(model, image: torch.Tensor, layers, memory_format, tile: int) -> Iterator[Tuple[Block, Dict]]:
    """``(block, features of its crop)`` over the blocks of ``image`` (one block if it fits a tile)."""
    hw = tuple(image.shape[-2:])
    bl = blocks(hw, tile) if 0 < tile < max(hw) else [Block((0, hw[0], 0, hw[1]), (0, hw[0], 0, hw[1]))]
    for b in bl:
        x = crop(image, b)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        yield b, model(x, layers)


def evaluate_tiled(obj: Objective, x: torch.Tensor, tile: int):
    """:meth:`Objective.evaluate` with the network run in blocks of at most ``tile`` px."""
    x = x.detach()
    bl = blocks(obj.hw, tile)
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
        y0, y1, x0, x1 = b.crop
        grad[..., y0:y1, x0:x1] += xc.grad
        del xc
    xg = x.clone().requires_grad_(True)
    pixel = obj.pixel(xg)
    sum(pixel.values()).backward()
    grad += xg.grad
    return grad, finish_terms(content, style, pixel)
