"""Helpers shared by the test modules (import as ``from testlib import ...``)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nst_core

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"


def shared_image(name: str, long_side: int = 96) -> torch.Tensor:
    """A read-only image from ../shared/images, downscaled so the long side is ``long_side``."""
    path = IMAGES / name
    if not path.is_file():
        pytest.fail(f"test image {path} is missing: the tests need ../shared/images next to the repo")
    return nst_core.resize_long(nst_core.load_image(path), long_side)
