"""Image I/O and resizing. Images are float tensors ``[B, 3, H, W]``, RGB, 0..1."""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .files import OutputError, check_folder_writable, write_atomically

log = logging.getLogger(__name__)


class ImageError(ValueError):
    """An image that cannot be read or used; the message says which and why."""


MAX_PIXELS = 100_000_000          # larger inputs are refused before they are decoded
BACKGROUND = 1.0                  # transparent areas are composited over white, as viewers show them
OUTPUT_TYPES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def load_image(path) -> torch.Tensor:
    """Read a file into ``[1, 3, H, W]`` RGB 0..1.

    EXIF rotation is applied; 8/16-bit, greyscale, palette and CMYK images become RGB; transparent
    areas are composited over white (``BACKGROUND``); images over ``MAX_PIXELS`` are refused.
    """
    arr = _read(path, _to_rgb_array)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0)


def load_mask(path) -> torch.Tensor:
    """Read a mask file into ``[H, W]`` 0..1: its brightness (white = in the region), times its
    opacity where it has an alpha channel (transparent = not in the region)."""
    return torch.from_numpy(np.ascontiguousarray(_read(path, _to_mask_array)))


def _read(path, convert) -> np.ndarray:
    """``convert(the upright PIL image)``, with one clear message for every way a file can fail."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file, got a folder: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is our limit
            with Image.open(path) as im:
                _check_pixels(im.size, path)
                return convert(_upright(im, path))
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path} is too large to read safely (over {MAX_PIXELS // 1_000_000} MP); "
                         "downscale it first") from None
    except Exception as e:  # decoders raise many types on damaged files
        raise ImageError(f"cannot read image {path}: {e or type(e).__name__}") from None


def _check_pixels(size: Tuple[int, int], path: Path) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{path} is {w}×{h} px ({w * h / 1e6:.0f} MP), more than the "
                         f"{MAX_PIXELS // 1_000_000} MP this reads; downscale it first")
    if w < 1 or h < 1:
        raise ImageError(f"{path} has no pixels ({w}×{h})")


def _upright(im: Image.Image, path: Path) -> Image.Image:
    """The image as a viewer shows it (EXIF orientation applied); damaged EXIF leaves it as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as e:
        log.warning("%s: could not read its EXIF orientation (%s); using the image as stored", path, e)
        return im


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """``[H, W, 3]`` float32 0..1, alpha composited over ``BACKGROUND``."""
    if im.mode in _SIXTEEN_BIT + ("I", "F"):
        return _high_depth_gray(im)
    if im.mode == "CMYK":
        return _rgb(_cmyk_to_rgb(im))
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return _over_background(rgba[..., :3], rgba[..., 3:])
    return _rgb(im.convert("RGB"))


def _to_mask_array(im: Image.Image) -> np.ndarray:
    """``[H, W]`` float32 0..1: mean brightness times opacity."""
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3].mean(-1) * rgba[..., 3]
    return _to_rgb_array(im).mean(-1)


def _rgb(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.float32) / 255.0


def _over_background(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha + BACKGROUND * (1.0 - alpha)


def _high_depth_gray(im: Image.Image) -> np.ndarray:
    """16-bit (and 32-bit integer holding 16-bit values) greyscale scaled by 65535, float by 1."""
    a = np.asarray(im)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode == "F":
        if not (np.isfinite(a).all() and lo >= 0 and hi <= 1):
            raise ImageError(f"a 32-bit float image with values {lo:g}..{hi:g}; only 0..1 is understood: "
                             "save it as an 8- or 16-bit image")
        g = a.astype(np.float32)
    else:
        if lo < 0 or hi > 65535:
            raise ImageError(f"a 32-bit integer image with values {lo:g}..{hi:g}; only 16-bit values are "
                             "understood: save it as an 8- or 16-bit image")
        g = a.astype(np.float32) / 65535.0
    rgb = np.repeat(g[..., None], 3, axis=2)
    if "transparency" in im.info and np.isscalar(im.info["transparency"]):
        alpha = (a != im.info["transparency"]).astype(np.float32)[..., None]
        rgb = _over_background(rgb, alpha)
    return rgb


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """Through the embedded colour profile when there is one (print CMYK differs a lot from naive)."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception as e:  # a damaged profile: the plain conversion is still close
            log.warning("CMYK colour profile unusable (%s); converting without it", e)
    return im.convert("RGB")


def to_pil(image: torch.Tensor) -> Image.Image:
    """First image of a ``[B, 3, H, W]`` (or ``[3, H, W]``) 0..1 tensor as a PIL RGB image."""
    x = image.detach()
    if x.dim() == 4:
        x = x[0]
    arr = (x.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def check_output_path(path, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: a folder, an existing file
    (unless ``overwrite``), an unsupported type, or a parent folder that cannot be created or written."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"the output {path} is a folder; give a file name such as {path / 'out.png'}")
    if path.suffix.lower() not in OUTPUT_TYPES:
        raise ImageError(f"unsupported output type {path.suffix or '(none)'!r} in {path}; "
                         "use .png, .jpg or .webp")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; use --overwrite to replace it, or choose another name")
    try:
        check_folder_writable(path.absolute().parent)
    except OutputError as e:
        raise ImageError(str(e)) from None
    return path


def save_image(image: torch.Tensor, path, overwrite: bool = False) -> Path:
    """Write atomically with the usual permissions; never replace a file unless ``overwrite``."""
    path = check_output_path(path, overwrite)
    fmt = OUTPUT_TYPES[path.suffix.lower()]
    pil = to_pil(image)
    return write_atomically(path, lambda f: pil.save(f, fmt, **({"quality": 95} if fmt == "JPEG" else {})),
                            overwrite)


def fit_size(hw: Tuple[int, int], long_side: int) -> Tuple[int, int]:
    """(H, W) scaled so the longer side is ``long_side``, keeping the aspect ratio."""
    h, w = hw
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` to ``size`` (H, W): antialiased bicubic, clamped to 0..1."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    down = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    out = F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False, antialias=down)
    return out.clamp(0, 1).to(image.dtype)


def resize_long(image: torch.Tensor, long_side: int) -> torch.Tensor:
    return resize(image, fit_size(tuple(image.shape[-2:]), long_side))
