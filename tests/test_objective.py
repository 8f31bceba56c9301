"""The objective's injected gradients against plain autograd, and the exact tiled evaluation
against the whole image."""
import pytest
import torch

import nst_core
from nst_core import blocks, style_stats, tiling, transfer as T
from nst_core.job import Job


def _objective(vgg, content, style, stat="gram", masked=False, memory_format=None, color="none"):
    ct = nst_core.ContentTarget(content)
    styles = [nst_core.StyleTarget(style)]
    if masked:
        left = torch.zeros(content.shape[-2:])
        left[:, : content.shape[-1] // 3] = 1
        ct.mask = 1 - left
        m = torch.zeros(content.shape[-2:])
        m[:, : content.shape[-1] // 2] = 1
        styles = [nst_core.StyleTarget(style, mask=m), nst_core.StyleTarget(style.flip(-1), mask=1 - m, weight=0.5)]
    opts = nst_core.Options(style_loss=stat, color=color)
    job = Job(vgg, ct, styles, nst_core.LossWeights(), opts, memory_format, style_stats.statistic(stat), None)
    return T.objective_at(job, content, 0)


def _autograd_loss(obj, x):
    """The same objective written with plain autograd through the features."""
    feats = obj.features(x)
    total = obj.pixel(x)["tv"]
    for n in obj.c_layers:
        d = feats[n].float() - obj.c_targets[n].float()
        m = obj.c_masks[n]
        total = total + obj.c_scale[n] * ((d ** 2).sum() if m is None else (d ** 2 * m).sum())
    for (i, n), (m, mass) in obj.views.items():
        term = obj.styles[i]
        f = feats[n].float()
        scale = obj.style_weight * term.weight * term.layers[n]
        if isinstance(obj.stat, style_stats.SlicedW):
            mat = f[0].permute(1, 2, 0).reshape(-1, f.shape[1])
            if m is not None:
                mat = mat[m.reshape(-1) > 0.5]
            p = mat @ obj.stat.directions(f.shape[1], f.device)
            t = style_stats._resample(term.targets[n], p.shape[0]).t()
            total = total + scale * (p.sort(0).values - t).pow(2).mean() / term.targets[n].pow(2).mean()
            continue
        mat = f[0].reshape(f.shape[1], -1)
        w = torch.ones(mat.shape[1]) if m is None else m.reshape(-1)
        e = {"f": (mat * w).sum(1) / mass, "f2": (mat * mat * w).sum(1) / mass, "ffT": (mat * w) @ mat.t() / mass}
        total = total + scale * obj.stat.distance(obj.stat.stat(e), term.targets[n])
    return total


@pytest.mark.parametrize("stat", ["gram", "mean_std", "w2", "sliced_w", "gram_deep_ms"])
@pytest.mark.parametrize("masked", [False, True])
def test_injected_gradient_equals_autograd(vgg, content96, style96, stat, masked):
    obj = _objective(vgg, content96, style96, stat, masked)
    torch.manual_seed(0)
    x = (content96 + 0.1 * torch.randn_like(content96)).clamp(0, 1)
    grad, terms = obj.evaluate(x)
    xr = x.clone().requires_grad_(True)
    ref = _autograd_loss(obj, xr)
    (want,) = torch.autograd.grad(ref, xr)
    assert float(terms["total"]) == pytest.approx(float(ref.detach()), rel=1e-4)
    assert float((grad - want).norm() / want.norm()) < 1e-3


def test_channels_last_gives_the_same_gradient(vgg, content96, style96):
    torch.manual_seed(1)
    x = (content96 + 0.1 * torch.randn_like(content96)).clamp(0, 1)
    g0, t0 = _objective(vgg, content96, style96, masked=True).evaluate(x)
    g1, t1 = _objective(vgg, content96, style96, masked=True, memory_format=torch.channels_last).evaluate(x)
    assert float(t1["total"]) == pytest.approx(float(t0["total"]), rel=1e-4)
    # Each layout is within its float32 rounding r of the exact gradient, so the two are within 2r.
    # r is what the network's float32 backward at this size gives against float64 (it depends on the
    # convolution algorithm a CPU's library picks: 6e-4 on one, 5e-7 on another).
    r = max(_network_rounding(vgg, x, fmt) for fmt in (torch.contiguous_format, torch.channels_last))
    assert float((g1 - g0).norm() / g0.norm()) <= 2 * r + 1e-6


def _network_rounding(vgg, x, fmt):
    """Relative difference of the gradient of a random linear function of the tapped features,
    float32 in layout ``fmt`` against float64."""
    import copy
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]

    def grad(model, image):
        image = image.clone().requires_grad_(True)
        feats = model(image.contiguous(memory_format=fmt), layers)
        gen = torch.Generator().manual_seed(0)
        loss = sum((f * torch.randn(f.shape, generator=gen, dtype=torch.float64).to(f.dtype)).sum() for f in feats.values())
        return torch.autograd.grad(loss, image)[0].double()
    exact = grad(copy.deepcopy(vgg).double(), x.double())
    return float((grad(vgg, x) - exact).norm() / exact.norm())


@pytest.mark.parametrize("stat", ["gram", "w2", "gram_deep_ms"])
def test_tiled_gradient_is_the_untiled_one(vgg, stat):
    """At 320 px in 224 px tiles (4 blocks, 64 px halo... capped by the tile) and in 288 px tiles
    (96 px halo): the same loss and gradient as one pass over the whole image."""
    content = nst_core.resize_long(nst_core.load_image(tiling_sample("tubingen.jpg")), 320)
    style = nst_core.resize_long(nst_core.load_image(tiling_sample("starry_night.jpg")), 192)
    obj = _objective(vgg, content, style, stat, masked=True)
    torch.manual_seed(2)
    x = (content + 0.1 * torch.randn_like(content)).clamp(0, 1)
    g0, t0 = obj.evaluate(x)
    g1, t1 = tiling.evaluate_tiled(obj, x, 288)
    assert len(blocks.blocks(obj.hw, 288)) >= 4
    assert float((g1 - g0).norm() / g0.norm()) < 1e-3
    for k in t0:
        assert float(t1[k]) == pytest.approx(float(t0[k]), rel=1e-4)


def tiling_sample(name):
    from testlib import ROOT
    return ROOT / "assets" / "samples" / name


def test_blocks_tile_the_image_on_the_layer_grid():
    hw = (301, 517)
    bl = blocks.blocks(hw, 256)
    covered = torch.zeros(hw)
    for b in bl:
        y0, y1, x0, x1 = b.core
        cy0, cy1, cx0, cx1 = b.crop
        assert cy0 <= y0 < y1 <= cy1 and cx0 <= x0 < x1 <= cx1
        assert cy1 - cy0 <= 256 and cx1 - cx0 <= 256
        assert y0 % 16 == 0 and x0 % 16 == 0 and cy0 % 16 == 0 and cx0 % 16 == 0
        covered[y0:y1, x0:x1] += 1
    assert bool((covered == 1).all()), "every pixel belongs to exactly one core"


def test_sliced_w_in_tiles_is_refused(vgg, content96, style96):
    with pytest.raises(nst_core.StylizeError, match="cannot run in tiles"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(style_loss="sliced_w", tile_size=64, size=96, steps=1))
