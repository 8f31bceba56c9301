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


def style_targets(vgg, styles, content, stat="gram"):
    """The style terms of one scale (the content's size), as ``stylize`` builds them."""
    from nst_core import style_stats, targets
    from nst_core.job import Job
    job = Job(vgg, nst_core.ContentTarget(content), styles, nst_core.LossWeights(), nst_core.Options(style_loss=stat),
              None, style_stats.statistic(stat), None)
    return targets.style_terms(job, content, 0)


def gram_targets(vgg, styles, content):
    """The (blended) Gram target of each layer of the first style term."""
    term = style_targets(vgg, styles, content)[0]
    return {n: t["gram"] for n, t in term.targets.items()}


def scorer(vgg, content, style, **opts):
    """Our objective at the content's size, to score any candidate image: {term: value}."""
    from nst_core import style_stats, transfer
    from nst_core.job import Job
    o = nst_core.Options(**opts)
    job = Job(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], nst_core.LossWeights(),
              o, None, style_stats.statistic(o.style_loss), None)
    obj = transfer.objective_at(job, content, 0)

    def score(img):
        _, t = obj.evaluate(nst_core.resize(img, tuple(content.shape[-2:])))
        return {k: float(v) for k, v in t.items()}
    return score
