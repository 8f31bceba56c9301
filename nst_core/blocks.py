"""Blocks of an image for the tiled VGG pass: their geometry, and the one decision "is this tiled".

A block is a *core* (the positions it accounts for) inside a *crop* (the core plus up to ``HALO``
px of context, what the network sees). The cores tile the image; block edges lie on multiples of
``ALIGN``, the largest stride of the tapped layers, so every layer's grid is cut exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Tuple

import torch

from .vgg import layer_stride

ALIGN = 16   # stride of relu5_x, the deepest layers used
HALO = 96    # px of context around a block's core: the gradient within 1e-6 of the untiled one at 512 px (64: 2e-3)


def is_tiled(tile: int, hw) -> bool:
    """Whether an image of size ``hw`` runs its VGG pass in tiles of ``tile`` px (0: never)."""
    return tile > 0 and max(hw) > tile


@dataclass
class Block:
    """The positions ``core`` (y0, y1, x0, x1, px) of the image, computed from the crop ``crop``."""
    crop: Tuple[int, int, int, int]
    core: Tuple[int, int, int, int]

    def local(self, stride: int) -> Tuple[slice, slice]:
        """The core in the crop's feature map of a layer with this stride."""
        (cy, _, cx, _), (y0, y1, x0, x1) = self.crop, self.core
        return slice((y0 - cy) // stride, (y1 - cy) // stride), slice((x0 - cx) // stride, (x1 - cx) // stride)

    def glob(self, stride: int) -> Tuple[slice, slice]:
        """The core in the whole image's feature map of a layer with this stride."""
        y0, y1, x0, x1 = self.core
        return slice(y0 // stride, y1 // stride), slice(x0 // stride, x1 // stride)

    def is_whole(self) -> bool:
        return self.crop == self.core

    def core_of(self, features: torch.Tensor, name: str) -> torch.Tensor:
        """The core's part of a layer's features computed over the crop."""
        return features if self.is_whole() else features[(...,) + self.local(layer_stride(name))]


def whole(hw) -> Block:
    box = (0, hw[0], 0, hw[1])
    return Block(box, box)


def halo_for(tile: int) -> int:
    """The context around each core: ``HALO``, less for small tiles (at most a third of the tile)."""
    return max(ALIGN, min(HALO, tile // 3 // ALIGN * ALIGN))


def blocks(hw: Tuple[int, int], tile: int, wrap: bool = False) -> List[Block]:
    """Blocks whose crops (core + halo) are at most ``tile`` px a side and whose cores tile ``hw``;
    one whole block where the image is not tiled. With ``wrap`` (a periodic image) the halo reaches
    across the edges on every side, so crops may start before 0 and end after the size."""
    if not is_tiled(tile, hw):
        return [whole(hw)]
    halo = halo_for(tile)
    core = max(ALIGN, (tile - 2 * halo) // ALIGN * ALIGN)

    def spans(n: int) -> List[Tuple[int, int, int, int]]:
        out = []
        for a in range(0, n, core):
            b = n if a + core >= n else a + core
            out.append((a - halo, b + halo, a, b) if wrap else (max(0, a - halo), min(n, b + halo), a, b))
            if b == n:
                break
        return out
    return [Block((cy0, cy1, cx0, cx1), (y0, y1, x0, x1))
            for cy0, cy1, y0, y1 in spans(hw[0]) for cx0, cx1, x0, x1 in spans(hw[1])]


def crop(image: torch.Tensor, block: Block) -> torch.Tensor:
    """The block's crop of ``image``; a crop reaching past the edges wraps around (periodic image)."""
    y0, y1, x0, x1 = block.crop
    h, w = image.shape[-2:]
    if 0 <= y0 and y1 <= h and 0 <= x0 and x1 <= w:
        return image[..., y0:y1, x0:x1]
    flat = image.reshape(-1, h * w).index_select(1, _wrapped_index(block, (h, w), image.device))
    return flat.view(*image.shape[:-2], y1 - y0, x1 - x0)


def add_crop(total: torch.Tensor, block: Block, part: torch.Tensor) -> None:
    """``total`` += ``part`` (a crop-sized tensor) at the block's crop, wrapping around like :func:`crop`."""
    y0, y1, x0, x1 = block.crop
    h, w = total.shape[-2:]
    if 0 <= y0 and y1 <= h and 0 <= x0 and x1 <= w:
        total[..., y0:y1, x0:x1] += part
        return
    total.view(-1, h * w).index_add_(1, _wrapped_index(block, (h, w), total.device),
                                     part.reshape(-1, part.shape[-2] * part.shape[-1]))


def _wrapped_index(block: Block, hw: Tuple[int, int], device) -> torch.Tensor:
    """Flat indices (row-major) of the crop's pixels in an ``hw`` image, modulo its size, on the
    image's device (index_select and index_add_ refuse an index on another device)."""
    y0, y1, x0, x1 = block.crop
    rows = torch.arange(y0, y1, device=device) % hw[0]
    cols = torch.arange(x0, x1, device=device) % hw[1]
    return (rows.view(-1, 1) * hw[1] + cols.view(1, -1)).flatten()


def block_features(model, image: torch.Tensor, layers, memory_format, tile: int) -> Iterator[Tuple[Block, Dict]]:
    """``(block, features of its crop)`` over the blocks of ``image`` (one block if it fits a tile)."""
    for b in blocks(tuple(image.shape[-2:]), tile):
        x = crop(image, b)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        yield b, model(x, layers)
