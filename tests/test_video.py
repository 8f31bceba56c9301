"""Video: optical flow and its masks on frames with known motion, scene cuts, long-term following,
video files in and out, and the CLI on a clip."""
import os
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import nst_core
from nst_core.video import clips as V
from nst_core.video import flow as FL
from nst_core.video import frames as FR
from testlib import IMAGES, sample_image

ROOT = Path(__file__).resolve().parents[1]


def crops(src, boxes, size=(64, 96)):
    """Crops of ``src`` at (top, left) offsets: a camera moving over the photo."""
    h, w = size
    return [src[..., y:y + h, x:x + w] for y, x in boxes]


@pytest.fixture(scope="module")
def photo():
    return sample_image("golden_gate.jpg", 200)


def paste(background, patch, top, left):
    out = background.clone()
    out[..., top:top + patch.shape[-2], left:left + patch.shape[-1]] = patch
    return out


@pytest.fixture(scope="module")
def square():
    """A textured square (a piece of another photo): an object moving over the background."""
    return sample_image("tubingen.jpg", 120)[..., 30:54, 40:64]


def test_flow_recovers_a_known_motion_and_the_warp_undoes_it(photo):
    prev, cur = crops(photo, [(20, 30), (22, 35)])   # the camera moves 5 px right, 2 down
    m = FL.estimate_motion(FL.gray_u8(prev), FL.gray_u8(cur))
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    dx, dy = m.backward[:, 0][inner[:1] + inner[2:]], m.backward[:, 1][inner[:1] + inner[2:]]
    assert abs(float(dx.median()) - 5) < 0.25 and abs(float(dy.median()) - 2) < 0.25, (dx.median(), dy.median())
    warped = FL.warp(prev, m.backward)
    err, before = (warped - cur).abs()[inner].mean(), (prev - cur).abs()[inner].mean()
    assert err < 0.03 and err < 0.25 * before, (float(err), float(before))
    # The last 5 columns and 2 rows come into view: they point outside the previous frame.
    assert m.inside[..., :, -4:].mean() == 0 and m.inside[..., -1:, :].mean() == 0
    assert m.inside[..., :-3, :-6].mean() > 0.99
    assert m.reliable[inner].mean() > 0.8


def test_disocclusion_is_masked(photo, square):
    """A square moves 10 px right over a still background: the background it uncovers was hidden
    in the previous frame, so the temporal loss must not apply there; far away it does."""
    bg = photo[..., 20:84, 20:116]
    prev, cur = paste(bg, square, 20, 20), paste(bg, square, 20, 30)
    m = FL.estimate_motion(FL.gray_u8(prev), FL.gray_u8(cur))
    uncovered = m.reliable[..., 22:42, 22:28]
    far = m.reliable[..., :, 70:]
    assert uncovered.mean() < 0.2, float(uncovered.mean())
    assert far.mean() > 0.9, float(far.mean())


def test_uncovered_or_changed_pixels_start_from_the_photo(photo, square):
    """Where the previous frame's paint does not belong (background a moving square uncovers, a patch
    whose light changed), the frame starts afresh there and no temporal loss pulls it back."""
    bg = photo[..., 20:84, 20:116]
    frames = [paste(bg, square, 20, 20), paste(bg, square, 20, 30)]
    _, gs = guide_run(frames, [f.flip(1) for f in frames])
    uncovered, far = (Ellipsis, slice(22, 42), slice(22, 28)), (Ellipsis, slice(4, -4), slice(70, -4))
    assert gs[1].valid[uncovered].mean() < 0.2, float(gs[1].valid[uncovered].mean())
    assert gs[1].valid[far].mean() > 0.9, float(gs[1].valid[far].mean())
    lit = bg.clone()
    lit[..., 10:40, 50:90] = (lit[..., 10:40, 50:90] + 0.3).clamp(max=1)
    _, gs = guide_run([bg, lit], [bg.flip(1), lit.flip(1)])
    inside, outside = (Ellipsis, slice(14, 36), slice(54, 86)), (Ellipsis, slice(45, 60), slice(4, 40))
    assert gs[1].reliable[inside].mean() < 0.2 and gs[1].valid[inside].mean() < 0.2
    assert gs[1].reliable[outside].mean() > 0.8


def test_motion_boundaries_found_where_the_flow_jumps():
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0, :, 16:] = 4.0
    b = FL.motion_boundaries(flow)
    assert b[..., 15].mean() == 1 and b[..., :10].sum() == 0 and b[..., 20:].sum() == 0


def guide_run(frames, outs, **kw):
    guide = FR.FrameGuide(nst_core.VideoOptions(**kw))
    results = []
    for f, o in zip(frames, outs):
        results.append(guide.follow(f))
        guide.remember(f, o)
    return guide, results


def test_scene_cut_starts_fresh(photo):
    a = crops(photo, [(20, 30), (21, 32), (22, 34)])
    b = crops(sample_image("tubingen.jpg", 200), [(10, 10), (11, 12)])
    frames = a + b
    outs = [f.flip(1) for f in frames]          # stand-ins for stylised frames
    guide, gs = guide_run(frames, outs)
    assert gs[0] is None and gs[3] is None, "the first frame and the cut start fresh"
    assert all(isinstance(gs[i], FR.Guide) for i in (1, 2, 4))
    assert guide.cuts == [3]
    assert all(gs[i].matched > 0.8 for i in (1, 2, 4)), [gs[i].matched for i in (1, 2, 4)]
    # Turned off, the cut is followed (badly).
    _, gs = guide_run(frames, outs, scene_cut=0.0)
    assert gs[3] is not None and gs[3].matched < 0.3


def test_long_term_fills_what_the_previous_frame_hid(photo, square):
    """The square goes right and comes back: the background it uncovers in the third frame was
    hidden in the second, but visible in the first; long-term following takes it from there."""
    bg = photo[..., 20:84, 20:116]
    frames = [paste(bg, square, 20, 20), paste(bg, square, 20, 44), paste(bg, square, 20, 20)]
    outs = [torch.rand_like(f) for f in frames]   # each stylised frame distinct, to see which one is used
    uncovered = (Ellipsis, slice(24, 40), slice(50, 64))
    _, short = guide_run(frames, outs)
    _, long = guide_run(frames, outs, long_term=2)
    assert short[2].reliable[uncovered].mean() < 0.2, float(short[2].reliable[uncovered].mean())
    assert long[2].reliable[uncovered].mean() > 0.8, float(long[2].reliable[uncovered].mean())
    err = (long[2].warped - outs[0])[uncovered].abs().mean()
    assert err < 0.05, float(err)
    assert long[1].reliable.mean() == pytest.approx(short[1].reliable.mean()), "nothing older to follow yet"


def test_long_term_restores_what_a_passing_change_of_light_hid(photo):
    """A patch lit for one frame only: in the next frame its pixels look unlike the previous frame's
    (no trust there, even faintly) but like the frame before, which long-term following takes."""
    bg = photo[..., 20:84, 20:116]
    lit = bg.clone()
    lit[..., 10:40, 50:90] = (lit[..., 10:40, 50:90] + 0.15).clamp(max=1)
    outs = [torch.rand_like(bg) for _ in range(3)]
    patch = (Ellipsis, slice(12, 38), slice(52, 88))
    _, short = guide_run([bg, lit, bg], outs)
    _, long = guide_run([bg, lit, bg], outs, long_term=2)
    assert short[2].reliable[patch].mean() < 0.5, float(short[2].reliable[patch].mean())
    assert long[2].reliable[patch].min() > 0.9, float(long[2].reliable[patch].min())
    assert (long[2].warped - outs[0])[patch].abs().mean() < 0.05


def test_following_the_previous_frame_keeps_its_contract(photo):
    prev, cur = crops(photo, [(20, 30), (20, 33)])
    out = prev.flip(1)
    for flow in ("dis", "farneback", "shift"):
        g = guide_run([prev, cur], [out, out], flow=flow)[1][1]
        assert g.warped.shape == out.shape and g.valid.shape == g.reliable.shape == (1, 1, 64, 96)
        assert bool((g.reliable <= g.valid + 1e-6).all()) and float(g.reliable.mean()) > 0.6, flow
        # Where the warp is trusted, it is the stylised frame moved 3 px left.
        inner = (Ellipsis, slice(4, -4), slice(4, -8))
        assert (g.warped - torch.roll(out, -3, -1))[inner].abs().mean() < 0.05, flow
    cut = sample_image("tubingen.jpg", 200)[..., :64, :96]
    assert guide_run([prev, cut], [out, out])[1][1] is None, "a scene cut starts fresh"


def test_passes_go_back_and_forth_over_the_clip(photo):
    """passes = 3: forwards, backwards, forwards again, every later pass refining each frame for
    frame_steps iterations; the progress total counts them all."""
    frames = torch.cat(crops(photo, [(20, 30), (21, 33), (22, 36)], size=(48, 64)))
    seen = []

    def on_step(info):
        seen.append((info.frame, info.total))
    style = [nst_core.StyleTarget(sample_image("starry_night.jpg", 64))]
    opts = nst_core.Options(size=64, start_size=0, steps=4, video=nst_core.VideoOptions(frame_steps=2, passes=3))
    vgg = nst_core.load_vgg()
    out = nst_core.stylize(vgg, nst_core.ContentTarget(frames), style, opts=opts, callback=on_step).image
    order = [f for i, (f, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != f]
    assert order == [0, 1, 2, 1, 0, 1, 2], order
    assert len(seen) == 4 + 2 * 2 + 2 * 3 * 2 == seen[-1][1], (len(seen), seen[-1])
    one = nst_core.stylize(vgg, nst_core.ContentTarget(frames), style, opts=replace(opts, video=replace(opts.video, passes=1))).image
    assert out.shape == one.shape == (3, 3, 48, 64)
    assert (out - one).abs().mean() > 1e-3, "the later passes changed the frames"


def test_unknown_flow_method_refused():
    with pytest.raises(ValueError, match="unknown flow method 'raft'"):
        FR.FrameGuide(nst_core.VideoOptions(flow="raft"))


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif", ""])
def test_clip_round_trip(tmp_path, photo, suffix):
    frames = torch.cat(crops(photo, [(20, 30 + 2 * i) for i in range(5)], size=(48, 64)))
    path = tmp_path / f"clip{suffix}"
    V.write_clip(frames, path, Fraction(10))     # GIF stores delays in 1/100 s: 10 fps is exact
    back = V.read_clip(path)
    assert back.frames.shape == frames.shape
    assert back.fps == (V.DEFAULT_FPS if suffix == "" else 10)
    tol = 0.02 if suffix == "" else 0.08     # PNG is lossless; codecs are not
    assert (back.frames - frames).abs().mean() < tol
    with pytest.raises(FileExistsError):
        V.write_clip(frames, path, Fraction(10))


def test_bundled_clip_reads_first_frames_resized():
    clip = V.read_clip(IMAGES / "bunny.mp4", max_frames=3, long_side=64)
    assert clip.frames.shape == (3, 3, 36, 64) and clip.fps == 25


def test_bad_clip_inputs_get_one_line_messages(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(nst_core.ImageError, match="no frames in"):
        V.read_clip(tmp_path / "empty")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(nst_core.ImageError, match="cannot read video"):
        V.read_clip(tmp_path / "junk.mp4")
    with pytest.raises(nst_core.ImageError, match="give an output video"):
        V.check_cli_paths(IMAGES / "bunny.mp4", tmp_path / "out.png", 0, False)
    with pytest.raises(nst_core.ImageError, match="--frames is for videos"):
        V.check_cli_paths(IMAGES / "tubingen.jpg", tmp_path / "out.png", 4, False)


def test_cli_stylises_a_clip(tmp_path):
    """The bundled clip through the command line: frame count, rate and size kept, one progress
    line per frame at least."""
    style = tmp_path / "style.png"
    nst_core.save_image(sample_image("starry_night.jpg", 64), style)
    out = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "nst_core", str(IMAGES / "bunny.mp4"), str(style), "-o", str(out),
                        "--frames", "2", "--size", "48", "--start-size", "0", "--steps", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "frame 1/2" in r.stderr and "frame 2/2" in r.stderr, r.stderr
    clip = V.read_clip(out)
    assert clip.frames.shape == (2, 3, 26, 48) and clip.fps == 25   # 48×27: 4:2:0 video drops the odd row
    r = subprocess.run([sys.executable, "-m", "nst_core", str(IMAGES / "bunny.mp4"), str(style), "-o", str(out),
                        "--frames", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
