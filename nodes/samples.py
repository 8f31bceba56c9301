"""The sample images and clip shipped in ``assets/samples`` (so the example workflows run right away)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..nst_core import load_image
from .common import NeuralStyleError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp"}
VIDEO_EXTS = {".mp4", ".webm", ".mov", ".mkv"}


def sample_names(exts=frozenset(IMAGE_EXTS)) -> list:
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in exts and p.is_file())


def sample_path(name: str, exts=frozenset(IMAGE_EXTS)) -> Path:
    """The bundled file ``name``; anything else (e.g. ../../x) is refused with the choices."""
    names = sample_names(exts)
    if name not in names:
        raise NeuralStyleError(f"no bundled sample named {name!r}; choose one of "
                               f"{', '.join(names) or '(none: assets/samples is missing)'}")
    return SAMPLES_DIR / name


def load_sample(name: str) -> torch.Tensor:
    """A bundled sample as ComfyUI IMAGE ``[1, H, W, 3]``."""
    return load_image(sample_path(name)).permute(0, 2, 3, 1).contiguous()
