"""Image I/O and resizing. Images are float tensors ``[B, 3, H, W]``, RGB, 0..1."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """An image that cannot be read or used; the message says which and why."""


def load_image(path) -> torch.Tensor:
    """Read a file into ``[1, 3, H, W]`` RGB 0..1 (EXIF rotation applied, alpha dropped)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file, got a folder: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """First image of a ``[B, 3, H, W]`` (or ``[3, H, W]``) 0..1 tensor as a PIL RGB image."""
    x = image.detach()
    if x.dim() == 4:
        x = x[0]
    arr = (x.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def save_image(image: torch.Tensor, path, overwrite: bool = False) -> Path:
    """Write atomically (temp file, then rename); never replace a file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; use --overwrite to replace it")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"unsupported output type {path.suffix!r}; use .png, .jpg or .webp")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix, dir=str(path.parent), prefix=".nst-")
    os.close(fd)
    try:
        to_pil(image).save(tmp, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        if not overwrite and path.exists():  # appeared while we worked
            raise FileExistsError(f"{path} already exists; use --overwrite to replace it")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fit_size(hw: Tuple[int, int], long_side: int, multiple: int = 1) -> Tuple[int, int]:
    """(H, W) scaled so the longer side is ``long_side``, keeping the aspect ratio."""
    h, w = hw
    s = long_side / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if multiple > 1:
        nh, nw = max(multiple, nh // multiple * multiple), max(multiple, nw // multiple * multiple)
    return nh, nw


def resize(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` to ``size`` (H, W): antialiased bicubic, clamped to 0..1."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    down = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    out = F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False, antialias=down)
    return out.clamp(0, 1).to(image.dtype)


def resize_long(image: torch.Tensor, long_side: int) -> torch.Tensor:
    return resize(image, fit_size(tuple(image.shape[-2:]), long_side))
