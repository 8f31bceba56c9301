"""Texture synthesis (no photo) and seamless output: the objective of a seamless image is the same
for every circular shift of it (so nothing marks where the tiles meet), tiles wrap exactly, and the
command line makes textures."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import nst_core
from nst_core import blocks, cli, seamless, tiling, transfer
from nst_core.job import Job
from nst_core.style_stats import statistic
from testlib import sample_image

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "samples"


def _objective(vgg, content, style, **opts):
    o = nst_core.Options(**opts)
    job = Job(vgg, content, [nst_core.StyleTarget(style)], nst_core.LossWeights(), o, None,
              statistic(o.style_loss), None)
    return transfer.objective_at(job, content.image, 0)


@pytest.mark.parametrize("on", [True, False])
def test_a_seamless_texture_objective_does_not_see_where_the_image_wraps(vgg, style96, on):
    """Shifting the image circularly shifts the gradient and leaves the loss: the result has no
    place that is an edge. Without seamless the edges are edges (the contrast)."""
    canvas = nst_core.ContentTarget.canvas(64, 96)
    obj = _objective(vgg, canvas, style96, seamless=on)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 96)
    g0, t0 = obj.evaluate(x)
    g1, t1 = obj.evaluate(x.roll((16, 32), (-2, -1)))
    rel = float((g1 - g0.roll((16, 32), (-2, -1))).norm() / g0.norm())
    loss = abs(float(t1["total"]) / float(t0["total"]) - 1)
    if on:
        assert rel < 1e-4 and loss < 1e-5, (rel, loss)
    else:
        assert rel > 1e-2, rel


def test_seamless_tiles_wrap_around_and_give_the_whole_images_gradient(vgg):
    """In tiles the halo reaches across the edges: 320×224 px in 256 px tiles (6 blocks) gives the
    untiled seamless gradient."""
    content = nst_core.resize_long(nst_core.load_image(ASSETS / "tubingen.jpg"), 320)[..., :224, :]
    style = sample_image("starry_night.jpg", 192)
    obj = _objective(vgg, nst_core.ContentTarget(content), style, seamless=True)
    torch.manual_seed(2)
    x = (content + 0.1 * torch.randn_like(content)).clamp(0, 1)
    g0, t0 = obj.evaluate(x)
    bl = blocks.blocks(obj.hw, 256, wrap=True)
    assert len(bl) >= 4 and any(b.crop[0] < 0 or b.crop[2] < 0 for b in bl)
    g1, t1 = tiling.evaluate_tiled(obj, x, 256, wrap=True)
    assert float((g1 - g0).norm() / g0.norm()) < 1e-3
    for k in t0:
        assert float(t1[k]) == pytest.approx(float(t0[k]), rel=1e-4)


def test_wrapped_crops_read_and_add_back_across_the_edges():
    img = torch.arange(6 * 8, dtype=torch.float32).view(1, 1, 6, 8)
    b = blocks.Block((-2, 4, 6, 11), (0, 2, 8, 9))
    want = img.roll((2, -6), (-2, -1))[..., :6, :5]
    assert torch.equal(blocks.crop(img, b), want)
    total = torch.zeros_like(img)
    blocks.add_crop(total, b, torch.ones(1, 1, 6, 5))
    assert float(total.sum()) == 30 and float(total.max()) == 1   # every crop pixel once, wrapped


def test_wrapped_crops_index_on_the_images_device():
    """A wrapped crop of an image that is not on the CPU (a seamless tiled run on a GPU): the meta
    device refuses a CPU index as CUDA does."""
    img = torch.zeros(1, 1, 6, 8, device="meta")
    b = blocks.Block((-2, 4, 6, 11), (0, 2, 8, 9))
    assert blocks.crop(img, b).shape == (1, 1, 6, 5)
    blocks.add_crop(img, b, torch.ones(1, 1, 6, 5, device="meta"))


def test_sizes_periodic_resampling_and_the_seam_measure():
    assert seamless.periodic_size((300, 517)) == (304, 512)
    t = torch.arange(48) / 48 * 2 * math.pi
    wave = (0.5 + 0.3 * torch.sin(t)).view(1, 1, 1, 48).expand(1, 3, 32, 48)
    up = seamless.resize_periodic(wave, (64, 96))
    t2 = torch.arange(96) / 96 * 2 * math.pi
    assert float((up[0, 0, 0] - (0.5 + 0.3 * torch.sin(t2))).abs().max()) < 1e-5
    torch.manual_seed(3)
    noise = torch.rand(1, 3, 64, 64)
    assert seamless.seam_ratio(noise) == pytest.approx(1.0, abs=0.1)
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    assert seamless.seam_ratio(ramp) > 10
    assert seamless.tiled_2x2(noise).shape == (1, 3, 128, 128)


def test_a_seamless_run_from_a_photo_starts_from_a_periodic_picture(vgg):
    """The photo's edges do not meet; the start fades them into the photo shifted by half its size,
    so the start wraps with no seam, and its middle is the photo."""
    photo = sample_image("tubingen.jpg", 128)
    style = [nst_core.StyleTarget(sample_image("starry_night.jpg", 64))]
    job = transfer.prepare(vgg, nst_core.ContentTarget(photo), style, nst_core.LossWeights(),
                           nst_core.Options(size=128, seamless=True))
    start = transfer.initial_image(job, photo, 0)
    assert seamless.seam_ratio(photo) > 4 and seamless.seam_ratio(start) < 2
    h, w = photo.shape[-2:]
    assert torch.equal(start[..., h // 2, w // 2], photo[..., h // 2, w // 2])
    plain = transfer.prepare(vgg, nst_core.ContentTarget(photo), style, nst_core.LossWeights(),
                             nst_core.Options(size=128))
    assert torch.equal(transfer.initial_image(plain, photo, 0), photo)


def test_circular_padding_is_restored(vgg):
    convs = [m for m in vgg.modules() if isinstance(m, torch.nn.Conv2d)]
    with seamless.circular_padding(vgg):
        assert {m.padding_mode for m in convs} == {"circular"}
    assert {m.padding_mode for m in convs} == {"zeros"}


def test_texture_refuses_a_colour_mode_that_needs_a_photo(vgg, style96):
    with pytest.raises(nst_core.StylizeError, match="a texture has no photo"):
        nst_core.stylize(vgg, nst_core.ContentTarget.canvas(48, 48), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=48, steps=1, start_size=0, color="luminance"))


# ---------------------------------------------------------------------------------------------
# The command line

def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_cli_makes_a_seamless_texture_of_the_asked_size(tmp_path, capsys):
    painting = tmp_path / "p.png"
    Image.open(ASSETS / "starry_night.jpg").convert("RGB").resize((80, 50)).save(painting)
    out = tmp_path / "t.png"
    code, err = run(capsys, "--texture", painting, "-o", out, "--size", "72x40", "--seamless", "--steps", 3,
                    "--start-size", 0, "-q")
    assert code == 0, err
    assert Image.open(out).size == (80, 48)    # seamless: multiples of 16
    code, err = run(capsys, "--texture", painting, "-o", tmp_path / "u.png", "--size", 48, "--steps", 2,
                    "--start-size", 0, "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "u.png").size == (48, 48)


@pytest.mark.parametrize("args, needle", [
    (["photo.png", "--texture", "p.png"], "only paintings"),
    (["photo.png", "p.png", "--size", "64x48"], "is for --texture"),
    (["photo.png"], "at least one style image"),
    (["--texture", "p.png", "--size", "16x64"], "use 32 to"),
    (["--texture", "p.png", "--color", "luminance"], "a texture has no photo"),
    (["--texture", "p.png", "--photoreal-weight", "100"], "a texture has no photo"),
])
def test_cli_texture_mistakes_get_one_line(tmp_path, capsys, args, needle):
    Image.new("RGB", (64, 48), (90, 120, 200)).save(tmp_path / "p.png")
    Image.new("RGB", (64, 48), (200, 120, 90)).save(tmp_path / "photo.png")
    argv = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    code, err = run(capsys, *argv, "-o", tmp_path / "out.png", "--steps", 1, "--start-size", 0, "-q",
                    "--weights", tmp_path / "none.pth")
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()
