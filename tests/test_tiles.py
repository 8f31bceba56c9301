"""Tiled evaluation: the network in blocks, the optimiser on the whole image, the untiled result."""
import pytest

import nst_core
from nst_core import blocks, memory, style_stats, targets
from testlib import sample_image


def test_a_tiled_run_ends_where_the_untiled_run_does(vgg):
    """256 px in 224 px tiles (6 blocks, 64 px of context): the same total loss within 2% after 20
    iterations (each term within 4%), and the same image (so no seams: a seam would be a difference along the block edges)."""
    content, style = sample_image("tubingen.jpg", 256), sample_image("starry_night.jpg", 192)

    def run(tile):
        return nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)],
                                opts=nst_core.Options(size=256, start_size=0, steps=20, tile_size=tile))
    assert len(blocks.blocks(tuple(content.shape[-2:]), 224)) == 6
    whole, tiled = run(0), run(224)
    # 20 L-BFGS steps amplify the tiled gradient's 1e-3 difference: two L-BFGS implementations that
    # agree to 1e-5 a step end 1-3% apart in a single term here, less in the total.
    for k, rel in (("content", 0.04), ("style", 0.04), ("total", 0.02)):
        assert tiled.history[k][-1] == pytest.approx(whole.history[k][-1], rel=rel), k
    diff = (tiled.image - whole.image).abs().mean(1)[0]
    assert float(diff.mean()) < 0.01
    edges = [b.core[3] for b in blocks.blocks(tuple(content.shape[-2:]), 224) if b.core[3] < 256]
    for e in set(edges):   # no more difference along a block edge than elsewhere
        assert float(diff[:, e - 2:e + 2].mean()) < 3 * float(diff.mean()) + 1e-3


@pytest.mark.parametrize("stat", ["gram", "sliced_w"])
def test_style_statistics_in_blocks_match_the_whole_image(vgg, stat):
    style = sample_image("starry_night.jpg", 320)
    st = style_stats.statistic(stat)
    layers = list(nst_core.DEFAULT_STYLE_LAYERS)
    whole = targets.style_statistics(vgg, style, layers, None, 0, st)
    cut = targets.style_statistics(vgg, style, layers, None, 256, st)
    assert len(blocks.blocks(tuple(style.shape[-2:]), 256)) >= 4
    for n in layers:
        a, b = (whole[n]["ffT"], cut[n]["ffT"]) if stat == "gram" else (whole[n], cut[n])
        assert float((a - b).pow(2).mean() / a.pow(2).mean()) < 1e-4, n


def test_a_cpu_run_larger_than_memory_is_refused_with_a_tile_size_that_fits(vgg, content128, style128, monkeypatch):
    # A machine with 32 MB available: the whole 128x96 image in fp32 is estimated at 37 MB, so it
    # must be refused (before any optimisation) with a tile size that would fit (64 px: 29 MB).
    opts = dict(size=128, start_size=128, scale_steps=[2], precision="fp32")
    monkeypatch.setattr(memory, "available_memory", lambda: 32_000_000)
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
    monkeypatch.setattr(memory, "available_memory", lambda: 5_000_000)
    with pytest.raises(nst_core.StylizeError, match="Lower the output size"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content128), [nst_core.StyleTarget(style128)],
                         opts=nst_core.Options(tile_size=64, **opts))


def test_tile_size_too_small_refused(vgg, content96, style96):
    with pytest.raises(nst_core.StylizeError, match=r"tile size is 32; use 0 \(no tiles\) or a value from 64"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=96, steps=1, tile_size=32))
