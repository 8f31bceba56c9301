"""Bad input, as people really give it, is answered with one clear message and nothing written;
odd but valid input (16-bit, greyscale, palette, CMYK, transparent, rotated images) is read right."""
from __future__ import annotations

import builtins
import math
import os
import random
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nst_core
from nst_core import checks, cli
from nst_core.image import ImageError, check_output_path, load_image, save_image

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "samples"


# ---------------------------------------------------------------------------------------------
# Helpers

def run_cli(capsys, *args):
    """``nst_core.cli.main`` in this process: (exit status, stderr)."""
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_refused(code, err, out: Path, *needles):
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".nst-")], "a temp file was left"


def tiny_run(pair, out):
    return [pair[0], pair[1], "-o", out, "-s", 32, "--steps", 1, "--start-size", 0, "-q"]


# ---------------------------------------------------------------------------------------------
# Numbers: NaN, infinity, negative and out-of-range values never start a run

@pytest.mark.parametrize("flag, value, needle", [
    ("--style-weight", "nan", "style weight is nan"),
    ("--style-weight", "inf", "style weight is inf"),
    ("--content-weight", "nan", "content weight is nan"),
    ("--tv-weight", "-1", "tv weight is -1"),
    ("--style-weight", "-100", "style weight is -100"),
    ("--style-weight", "1e30", "use a value from 0 to 1000000"),   # finite, but the loss overflows: a black image
    ("--size", "-5", "size is -5"),
    ("--size", "20", "or a value from 32 to 16384"),
    ("--steps", "-1", "steps is -1"),
    ("--steps", "0", "steps is 0"),
    ("--start-size", "-3", "start size is -3"),
    ("--tile-size", "32", "tile size is 32"),
    ("--lr", "0", "lr is 0"),
    ("--lr", "nan", "lr is nan"),
    ("--lr", "1e300", "from 1e-05 to 1"),
    ("--history-size", "-2", "history size is -2"),
    ("--seed", "-1", "seed is -1"),
    ("--style-scale", "nan", "scale of style 1 is nan"),
    ("--scale-steps", "0", "scale steps"),
    ("--style-blend-weights", "-1", "weight of style 1 is -1"),
    # video options: a negative count is refused, never taken as "all"
    ("--frames", "-1", "frames is -1"),
    ("--passes", "0", "passes is 0"),
    ("--long-term", "-2", "long term is -2"),
    ("--long-term", "26", "from 0 to 25"),
    ("--frame-steps", "-1", "frame steps is -1"),
    ("--temporal-weight", "-1", "temporal weight is -1"),
    ("--fps", "-5", "fps is -5"),
    ("--smooth-radius", "-1", "radius of the final smoothing is -1"),
    ("--style-blend-weights", "0", "every style weight is 0"),
])
def test_cli_refuses_bad_numbers_before_anything_runs(tmp_path, pair, capsys, flag, value, needle):
    out = tmp_path / "out.png"
    # A weights file that does not exist: had the run got as far as loading the model, the message
    # would be about that file instead.
    code, err = run_cli(capsys, *tiny_run(pair, out), "--weights", tmp_path / "none.pth", f"{flag}={value}")
    assert_refused(code, err, out, needle)


def test_negative_blend_weight_among_several_refused(tmp_path, pair, capsys):
    out = tmp_path / "out.png"
    code, err = run_cli(capsys, pair[0], pair[1], pair[1], *tiny_run(pair, out)[2:], "--style-blend-weights=-1,2")
    assert_refused(code, err, out, "weight of style 1 is -1")


def test_core_refuses_every_bad_number(vgg, content96, style96):
    """Library callers get the same checks: checks.validate (stylize's first step) with LossWeights."""
    c, s = nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)]
    o = nst_core.Options(size=64, steps=1, start_size=0)
    checks.validate(vgg, c, s, o, nst_core.LossWeights())  # the defaults pass
    bad_weights = [dict(content=math.nan), dict(style=math.inf), dict(style=-1.0), dict(tv=-1e-3),
                   dict(temporal=math.nan), dict(photoreal=-1.0), dict(strength=1.5), dict(strength=math.nan)]
    for kw in bad_weights:
        with pytest.raises(nst_core.StylizeError):
            checks.validate(vgg, c, s, o, nst_core.LossWeights(**kw))
    bad_opts = [dict(size=-5), dict(size=20), dict(steps=0), dict(steps=-1), dict(start_size=-1), dict(lr=0.0),
                dict(lr=math.nan), dict(history_size=-1), dict(tile_size=10), dict(seed=-1), dict(seed=2 ** 64),
                dict(style_loss="gramm"), dict(precision="fp8"), dict(steps=2.5),
                dict(scale_steps=[0]), dict(channels_last="yes")]
    bad_video = [dict(frame_steps=-1), dict(passes=0), dict(long_term=-1), dict(long_term=99), dict(flow="raft"),
                 dict(temporal="yes"), dict(scene_cut=math.nan)]
    for kw in bad_opts:
        with pytest.raises(nst_core.StylizeError):
            checks.validate(vgg, c, s, replace(o, **kw), nst_core.LossWeights())
    for kw in bad_video:
        with pytest.raises(nst_core.StylizeError):
            checks.validate(vgg, c, s, replace(o, video=nst_core.VideoOptions(**kw)), nst_core.LossWeights())
    for st in ([nst_core.StyleTarget(style96, weight=math.nan)], [nst_core.StyleTarget(style96, scale=math.inf)],
               [nst_core.StyleTarget(style96, weight=0.0)],
               [nst_core.StyleTarget(style96, layers={"relu1_1": math.nan})]):
        with pytest.raises(nst_core.StylizeError):
            checks.validate(vgg, c, st, o, nst_core.LossWeights())


def test_stylize_refuses_a_negative_blend_weight(vgg, content96, style96):
    """It used to count as 0: the other style alone, no word."""
    other = nst_core.resize_long(load_image(ASSETS / "the_scream.jpg"), 96)
    styles = [nst_core.StyleTarget(style96, weight=-1.0), nst_core.StyleTarget(other, weight=1.0)]
    with pytest.raises(nst_core.StylizeError, match="weight of style 1 is -1"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), styles,
                         opts=nst_core.Options(size=64, steps=1, start_size=0))


def test_images_in_0_255_or_with_nan_refused(vgg, content96, style96):
    """A classic library mistake: 0..255 values (or NaN from upstream) would give a wrong image."""
    o = nst_core.Options(size=64, steps=1, start_size=0)
    with pytest.raises(nst_core.StylizeError, match="divide by 255"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96 * 255), [nst_core.StyleTarget(style96)], opts=o)
    bad = style96.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(nst_core.StylizeError, match="NaN"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(bad)], opts=o)


# ---------------------------------------------------------------------------------------------
# Images as people have them

def _gradient(w=64, h=48):
    return np.linspace(0, 1, w * h, dtype=np.float64).reshape(h, w)


def test_16bit_greyscale_png_read_at_its_own_brightness(tmp_path):
    g = _gradient()
    path = tmp_path / "g16.png"
    Image.fromarray((g * 65535).round().astype(np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    x = load_image(path)
    assert x.shape == (1, 3, 48, 64)
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])
    assert float((x[0, 0] - torch.from_numpy(g).float()).abs().max()) < 1e-4  # was almost all white


def test_transparent_png_composited_over_white(tmp_path):
    """The RGB hidden under transparent pixels (black here, as many editors store it) is not shown."""
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[:, :32] = (200, 40, 40, 255)           # opaque red on the left
    rgba[:, 32:48, 3] = 128                      # half-transparent black
    path = tmp_path / "rgba.png"                 # right quarter: fully transparent black
    Image.fromarray(rgba, "RGBA").save(path)
    x = load_image(path)[0]
    assert torch.allclose(x[:, :, :32].mean((1, 2)), torch.tensor([200, 40, 40]) / 255, atol=1e-6)
    assert torch.allclose(x[:, :, 48:], torch.ones(3, 48, 16))
    assert torch.allclose(x[:, :, 32:48], torch.full((3, 48, 16), 127 / 255), atol=1e-6)


def test_palette_greyscale_cmyk_la_and_1bit_images(tmp_path):
    p = Image.new("P", (32, 32))
    p.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    p.paste(1, (0, 0, 16, 32))
    p.save(tmp_path / "p.png", transparency=0)  # colour 0 (blue, the right half) is transparent
    x = load_image(tmp_path / "p.png")[0]
    assert torch.equal(x[:, 0, 0], torch.tensor([0.0, 1.0, 0.0])) and torch.equal(x[:, 0, 31], torch.ones(3))

    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    r, g, b = load_image(tmp_path / "c.jpg")[0, :, 16, 16].tolist()
    assert r > 0.9 and g < 0.1 and b < 0.1                      # pure red stays red

    Image.new("LA", (32, 32), (100, 0)).save(tmp_path / "la.png")
    assert torch.equal(load_image(tmp_path / "la.png"), torch.ones(1, 3, 32, 32))
    Image.new("L", (32, 32), 51).save(tmp_path / "l.png")
    assert torch.allclose(load_image(tmp_path / "l.png"), torch.full((1, 3, 32, 32), 0.2))
    Image.new("1", (32, 32), 1).save(tmp_path / "b.png")
    assert torch.equal(load_image(tmp_path / "b.png"), torch.ones(1, 3, 32, 32))


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (64, 32), (255, 255, 255))
    im.paste((255, 0, 0), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6   # stored landscape, shown rotated 90° clockwise
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    x = load_image(tmp_path / "rot.jpg")
    assert x.shape == (1, 3, 64, 32)
    assert x[0, 0, :8, -8:].mean() > 0.9 and x[0, 1, :8, -8:].mean() < 0.15   # the red corner moved top-right


def _png_header_only(path: Path, w: int, h: int):
    """A PNG that claims w×h pixels with (almost) no data: what a decompression bomb looks like."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("w, h", [(12000, 9000), (30000, 30000)])
def test_huge_images_refused_before_decoding(tmp_path, w, h):
    path = tmp_path / "huge.png"
    _png_header_only(path, w, h)
    with pytest.raises(ImageError, match=r"downscale it first"):
        load_image(path)


def test_tiny_and_thin_images_refused_clearly(tmp_path, pair, capsys):
    Image.new("RGB", (8, 8), (90, 90, 90)).save(tmp_path / "tiny.png")
    Image.new("RGB", (400, 20), (90, 90, 90)).save(tmp_path / "thin.png")
    out = tmp_path / "out.png"
    code, err = run_cli(capsys, tmp_path / "tiny.png", pair[1], "-o", out, "-s", 32, "--steps", 1, "-q")
    assert_refused(code, err, out, "8×8", "at least 16 px")
    code, err = run_cli(capsys, tmp_path / "thin.png", pair[1], "-o", out, "-s", 64, "--steps", 1, "-q",
                        "--weights", tmp_path / "none.pth")
    assert_refused(code, err, out, "too thin")
    # A thin style strip used to reach VGG's pooling and end in a RuntimeError traceback.
    code, err = run_cli(capsys, pair[0], tmp_path / "thin.png", "-o", out, "-s", 64, "--steps", 1, "-q",
                        "--start-size", 0, "--weights", tmp_path / "none.pth")
    assert_refused(code, err, out, "style image 1 (400×20) becomes 64×3 px", "too thin")


# ---------------------------------------------------------------------------------------------
# Weight files: damage is not an attack

@pytest.mark.parametrize("content, needle", [
    (os.urandom(4096), "not a PyTorch checkpoint / safetensors file: the file may be corrupt or truncated"),
    (b"", "is empty"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "web page"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 5\n", "Git LFS pointer"),
])
def test_damaged_weights_files_named_as_damage(tmp_path, content, needle):
    path = tmp_path / "vgg19.pth"
    path.write_bytes(content)
    with pytest.raises(nst_core.WeightsError) as e:
        nst_core.load_vgg(path)
    assert needle in str(e.value) and "carries code" not in str(e.value)


def test_truncated_checkpoint_is_corrupt_and_code_pickle_still_refused(tmp_path):
    sd = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}
    whole = tmp_path / "whole.pth"
    torch.save(sd, whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(nst_core.WeightsError, match="corrupt or truncated") as e:
        nst_core.load_vgg(cut)
    assert "carries code" not in str(e.value)

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (builtins.exec, (f"open({str(marker)!r}, 'w').write('x')",))

    evil = tmp_path / "evil.pth"
    torch.save({**sd, "x": Payload()}, evil)
    with pytest.raises(nst_core.WeightsError, match="carries code"):
        nst_core.load_vgg(evil)
    assert not marker.exists()


def test_cli_random_bytes_weights_message(tmp_path, pair, capsys):
    junk = tmp_path / "vgg19-dcbb9e9d.pth"
    junk.write_bytes(random.Random(1).randbytes(20000))
    out = tmp_path / "out.png"
    code, err = run_cli(capsys, *tiny_run(pair, out), "--weights", junk)
    assert_refused(code, err, out, "corrupt or truncated", "download it again")


# ---------------------------------------------------------------------------------------------
# Output files

def test_output_folder_refused_before_the_run(tmp_path, pair, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    # With a broken weights file: the folder is reported first, so it was checked before the model loaded.
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    code, err = run_cli(capsys, *tiny_run(pair, folder), "--overwrite", "--weights", junk)
    assert code == 2 and "is a folder" in err and "Errno" not in err, err
    assert folder.is_dir() and not any(folder.iterdir())


@pytest.mark.parametrize("name, needle", [("out.gif", "unsupported output type"), ("noext", "unsupported"),
                                          ("afile.png/out.png", "is a file")])
def test_unwritable_outputs_refused(tmp_path, name, needle):
    (tmp_path / "afile.png").write_bytes(b"x")
    with pytest.raises(ImageError, match=needle):
        check_output_path(tmp_path / name)


def test_outputs_get_the_umask_permissions(tmp_path):
    """Files used to keep the temp file's 0600: other users (a web server, a shared folder) could not read them."""
    old = os.umask(0o022)
    try:
        png = save_image(torch.rand(1, 3, 16, 16), tmp_path / "a" / "out.png")
        os.umask(0o027)
        jpg = save_image(torch.rand(1, 3, 16, 16), tmp_path / "out.jpg")
        st = nst_core.convert_to_safetensors(nst_core.DEFAULT, tmp_path / "vgg.safetensors")
    finally:
        os.umask(old)
    assert png.stat().st_mode & 0o777 == 0o644
    assert jpg.stat().st_mode & 0o777 == 0o640
    assert st.stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------------------------------------
# Garbage in any argument: exit 0 with a real image, or exit 2 with one line; never a traceback

GARBAGE = ["nan", "inf", "-inf", "-1", "0", "1", "1e-3", "1e308", "abc", "", "0x10", "1,2", " 2 ", "32", "-0"]
VALID = {"--size": ["32", "48", "0"], "--steps": ["1", "2"], "--start-size": ["0", "64"],
         "--content-weight": ["0", "1e-3", "10"], "--style-weight": ["0", "1e3", "50"], "--tv-weight": ["0", "0.01"],
         "--style-scale": ["0.5", "2"], "--style-blend-weights": ["1", "0.5"], "--scale-steps": ["1", "2"],
         "--lr": ["0.1"], "--tile-size": ["0", "64"], "--history-size": ["0", "3"], "--seed": ["0", "7"]}
NUMBER_FLAGS = sorted(VALID)
WORD_FLAGS = {
    "--init": ["noise", "image", "bogus", "style_mean"],
    "--precision": ["fp32", "fp8", ""],
    "--device": ["cpu", "meta", "gpu", "cuda:7", "cuda"],
    "--content-layers": ["relu3_1", "relu9_9", "", "relu4_2:nan", "relu4_2:-1", ":::"],
    "--color": ["luminance", "sepia"],
    "--pooling": ["avg", "min"],
}


def _garbage_case(rng: random.Random, d: Path, pair):
    args = {}
    for flag in rng.sample(NUMBER_FLAGS, rng.randint(1, 2)):
        args[flag] = rng.choice(GARBAGE if rng.random() < 0.25 else VALID[flag])
        if flag == "--steps" and args[flag] in ("1e308", "32", "0x10"):
            args[flag] = "2"   # valid but long runs are not the point here
    for flag in rng.sample(sorted(WORD_FLAGS), rng.choice([0, 0, 0, 1, 2])):
        args[flag] = rng.choice(WORD_FLAGS[flag])
    if args.get("--start-size") in ("1", "32"):
        args["--start-size"] = "0"  # 1 px to 32 px would be a multi-scale run of 20 steps a scale
    content = rng.choice([pair[0]] * 12 + [d / "junk.jpg", d / "missing.png", d / "g16.png", d / "rgba.png"])
    out = rng.choice(["out.png"] * 10 + ["out.gif", "sub/dir/out.jpg", "folder", "out"])
    argv = [content, pair[1], "-o", d / out, "-s", "32", "--steps", "1", "--start-size", "0", "-q"]
    for flag, value in args.items():
        argv.append(f"{flag}={value}")
    return argv, d / out


def test_random_garbage_never_gives_a_traceback_or_a_silent_wrong_image(tmp_path, pair, capsys, monkeypatch):
    (tmp_path / "junk.jpg").write_bytes(random.Random(2).randbytes(3000))
    Image.fromarray((_gradient() * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    Image.open(pair[0]).convert("RGBA").save(tmp_path / "rgba.png")
    # One thread: the runs are tiny, and on a busy machine several threads only wait for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run_garbage(tmp_path, pair, capsys, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _run_garbage(tmp_path, pair, capsys, monkeypatch):
    model = nst_core.load_vgg()
    # One model for all cases (the file is read once): the point is the checks, not the loading.
    monkeypatch.setattr(cli, "load_vgg", lambda *a, pooling="max", **k: model if pooling == "max"
                        else nst_core.load_vgg(*a, pooling=pooling, **k))
    rng = random.Random(20)
    outcomes = {0: 0, 2: 0}
    for i in range(40):
        d = tmp_path / f"case{i}"
        d.mkdir()
        (d / "folder").mkdir()
        for f in ("junk.jpg", "g16.png", "rgba.png"):
            os.link(tmp_path / f, d / f)
        argv, out = _garbage_case(rng, d, pair)
        code = cli.main([str(a) for a in argv])
        err = capsys.readouterr().err
        where = f"case {i}: {' '.join(map(str, argv[2:]))}"
        assert code in (0, 2), (where, code, err)
        assert "Traceback" not in err, (where, err)
        outcomes[code] += 1
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (where, err)
            assert not out.is_file() and not list(d.rglob(".nst-*")), where
        else:
            img = np.asarray(Image.open(out).convert("RGB"), dtype=np.float32) / 255
            assert max(img.shape[:2]) in (32, 48, 64) and img.shape[1] > img.shape[0], (where, img.shape)
            assert 0.05 < img.mean() < 0.95 and img.std() > 0.03, (where, img.mean(), img.std())
    assert outcomes[0] >= 8 and outcomes[2] >= 15, outcomes   # both paths were exercised
