"""Tiled optimisation: bounded memory for large outputs, shared style statistics, no seams."""
import pytest
import torch

import nst_core
from nst_core import transfer as T


def test_tile_boxes_cover_with_overlap():
    boxes = T.tile_boxes((96, 128), 64, 16)
    covered = torch.zeros(96, 128)
    for y, x, h, w in boxes:
        assert h <= 64 and w <= 64
        covered[y:y + h, x:x + w] += 1
    assert covered.min() >= 1
    assert covered.max() >= 2  # neighbours overlap
    assert T.tile_boxes((50, 60), 64, 16) == [(0, 0, 50, 60)]


def test_tiled_run_matches_untiled_without_seams(vgg, content128, style128):
    opts = dict(size=128, start_size=64, scale_steps=[30, 10, 10])
    ticks = []
    tiled = nst_core.stylize(vgg, nst_core.ContentTarget(content128), [nst_core.StyleTarget(style128)],
                             opts=nst_core.Options(tile_size=64, **opts), callback=lambda i: ticks.append(i.total))
    plain = nst_core.stylize(vgg, nst_core.ContentTarget(content128), [nst_core.StyleTarget(style128)],
                             opts=nst_core.Options(**opts))
    assert tiled.image.shape == plain.image.shape == content128.shape
    # 64 px scale untiled (30), 91 px in 2x2 tiles (4 x 10), 128 px in 2x3 tiles (6 x 10)
    assert ticks[0] == 30 + 40 + 60 == len(tiled.history["total"])
    score = {}
    for name, img in (("tiled", tiled.image), ("plain", plain.image), ("content", content128)):
        terms = T.blend_styles(vgg, [nst_core.StyleTarget(style128)], 128, 0, content128, "none", None)
        obj = T.Objective(vgg, content128, nst_core.ContentTarget(content128), terms, nst_core.LossWeights(), 0, None)
        with torch.no_grad():
            score[name] = {k: float(v) for k, v in obj(img)[1].items()}
    assert score["tiled"]["style"] < 0.25 * score["content"]["style"], score
    # 10 steps per 64 px tile in three sweeps, style statistics and content weighted by the blend
    # weights, 15% of each style term on the tile's own Gram: the tiled run's style and content
    # losses are 1.27–1.33× and 1.01–1.04× the plain run's across numerically equivalent settings
    # (fp32 or bf16, fused or autograd gradients). Unweighted statistics gave 1.6–1.8× style (one
    # sweep: 1.9–2.1×).
    assert score["tiled"]["style"] < 1.5 * score["plain"]["style"], score
    assert score["tiled"]["content"] < 1.4 * score["plain"]["content"], score
    # No seams: the step across every tile edge is like any other step in the image.
    x = tiled.image[0]
    col = (x[..., 1:] - x[..., :-1]).abs().mean((0, 1))   # step between column c and c+1
    row = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((0, 2))
    edges_x = sorted({b[1] for b in T.tile_boxes((96, 128), 64, 16) if b[1] > 0} |
                     {b[1] + b[3] - 1 for b in T.tile_boxes((96, 128), 64, 16) if b[1] + b[3] < 128})
    edges_y = sorted({b[0] for b in T.tile_boxes((96, 128), 64, 16) if b[0] > 0} |
                     {b[0] + b[2] - 1 for b in T.tile_boxes((96, 128), 64, 16) if b[0] + b[2] < 96})
    for e in edges_x:
        assert col[e - 1:e + 1].max() < 1.6 * col.median(), (e, col[e - 1:e + 1], col.median())
    for e in edges_y:
        assert row[e - 1:e + 1].max() < 1.6 * row.median(), (e, row[e - 1:e + 1], row.median())


def test_tile_size_too_small_refused(vgg, content96, style96):
    with pytest.raises(nst_core.StylizeError, match="tile size"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=96, tile_size=32))


def test_style_grams_in_tiles_match_the_whole_image(vgg, style128, monkeypatch):
    """A large style image is seen in tiles with a halo of context: its Grams are the whole
    image's, and no VGG pass sees more than a tile and its halo."""
    img = nst_core.resize(style128, (160, 208))
    layers = list(nst_core.DEFAULT_STYLE_LAYERS)
    whole = T.style_grams(vgg, img, layers, None)
    seen = []
    handle = vgg.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        tiled = T.style_grams(vgg, img, layers, None, tile=64)
    finally:
        handle.remove()
    assert len(seen) == 12 and max(max(s) for s in seen) <= 64 + 2 * T.STYLE_TILE_HALO, seen   # 3×4 tiles
    for n in layers:
        err = float((tiled[n] - whole[n]).pow(2).mean() / whole[n].pow(2).mean())
        assert err < 1e-6, (n, err)
    # Without the halo the features at the tile edges are wrong: the deep layers' Grams differ.
    monkeypatch.setattr(T, "STYLE_TILE_HALO", 0)
    cut = T.style_grams(vgg, img, layers, None, tile=64)
    assert float((cut["relu5_1"] - whole["relu5_1"]).pow(2).mean() / whole["relu5_1"].pow(2).mean()) > 1e-3


def test_blend_styles_passes_the_tile_size_on(vgg, content128, style128):
    a = T.blend_styles(vgg, [nst_core.StyleTarget(style128, scale=2.0)], 128, 0, content128, "none", None)
    seen = []
    handle = vgg.register_forward_pre_hook(lambda m, args: seen.append(max(args[0].shape[-2:])))
    try:
        b = T.blend_styles(vgg, [nst_core.StyleTarget(style128, scale=2.0)], 128, 0, content128, "none", None,
                           tile=64)
    finally:
        handle.remove()
    assert max(seen) < 256, seen    # the 256 px style image was seen in tiles
    for n, g in a[0][1].items():
        assert float((b[0][1][n] - g).pow(2).mean() / g.pow(2).mean()) < 1e-6, n


def test_a_cpu_run_larger_than_memory_is_refused_with_a_tile_size_that_fits(vgg, content128, style128, monkeypatch):
    # A machine with 32 MB available: the whole 128x96 image in fp32 is estimated at 37 MB, so it
    # must be refused (before any optimisation) with a tile size that would fit (64 px: 29 MB).
    opts = dict(size=128, start_size=128, scale_steps=[2], precision="fp32")
    monkeypatch.setattr(T.heap, "available_memory", lambda: 32_000_000)
    with pytest.raises(nst_core.StylizeError) as e:
        nst_core.stylize(vgg, nst_core.ContentTarget(content128), [nst_core.StyleTarget(style128)],
                         opts=nst_core.Options(**opts))
    msg = str(e.value)
    assert "128×96 px run on the CPU needs about 35 MB of memory and 31 MB is available" in msg and "tile size (about 64 px)" in msg, msg
    # The suggested tile size does fit: that run goes ahead.
    out = nst_core.stylize(vgg, nst_core.ContentTarget(content128), [nst_core.StyleTarget(style128)],
                           opts=nst_core.Options(tile_size=64, **opts))
    assert out.image.shape == content128.shape
    # Where not even 64 px tiles fit, the message says to lower the size.
    monkeypatch.setattr(T.heap, "available_memory", lambda: 5_000_000)
    with pytest.raises(nst_core.StylizeError, match="Lower the output size"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content128), [nst_core.StyleTarget(style128)],
                         opts=nst_core.Options(tile_size=64, **opts))
