"""The sample images shipped in ``assets/samples`` (so the example workflows run right away)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..nst_core.image import load_image
from .convert import NeuralStyleError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
_EXTS = {".jpg", ".jpeg", ".png", ".webp"}


def sample_names() -> list:
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in _EXTS and p.is_file())


def load_sample(name: str) -> torch.Tensor:
    """A bundled sample as ComfyUI IMAGE ``[1, H, W, 3]``."""
    if name not in sample_names():  # also refuses paths such as ../../x
        raise NeuralStyleError(f"no bundled sample image named {name!r}; choose one of "
                               f"{', '.join(sample_names()) or '(none: assets/samples is missing)'}")
    return load_image(SAMPLES_DIR / name).permute(0, 2, 3, 1).contiguous()
