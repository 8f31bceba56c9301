"""Helpers shared by the test modules (import as ``from testlib import ...``)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nst_core

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "assets" / "samples"   # in the repo, so a bare clone passes


def sample_image(name: str, long_side: int = 96) -> torch.Tensor:
    """A bundled sample image (assets/samples), downscaled so the long side is ``long_side``."""
    path = IMAGES / name
    if not path.is_file():
        pytest.fail(f"sample image {path} is missing from the repository")
    return nst_core.resize_long(nst_core.load_image(path), long_side)
