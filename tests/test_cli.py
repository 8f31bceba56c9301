"""The command line end to end, as a user runs it (a real subprocess)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "nst_core", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=600)


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    from testlib import IMAGES
    d = tmp_path_factory.mktemp("imgs")
    Image.open(IMAGES / "tubingen.jpg").resize((80, 60)).save(d / "photo.png")
    Image.open(IMAGES / "starry_night.jpg").resize((64, 40)).save(d / "painting.jpg")
    return d / "photo.png", d / "painting.jpg"


def test_writes_png_of_requested_size_and_refuses_overwrite(tmp_path, small_pair):
    content, style = small_pair
    out = tmp_path / "out.png"
    r = cli(content, style, "-o", out, "--size", 64, "--steps", 4, "--start-size", 0, "-q")
    assert r.returncode == 0, r.stderr
    im = Image.open(out)
    assert im.format == "PNG" and im.size == (64, 48)
    before = out.read_bytes()
    r = cli(content, style, "-o", out, "--size", 64, "--steps", 2, "--start-size", 0, "-q")
    assert r.returncode == 2
    assert "already exists" in r.stderr and "--overwrite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before, "the existing file was touched"
    r = cli(content, style, "-o", out, "--size", 48, "--steps", 2, "--start-size", 0, "-q", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (48, 36)


def test_progress_bar_and_multiscale(tmp_path, small_pair):
    content, style = small_pair
    out = tmp_path / "ms.png"
    r = cli(content, style, "-o", out, "--size", 80, "--start-size", 40, "--scale-steps", "3,2,2")
    assert r.returncode == 0, r.stderr
    assert "7/7" in r.stderr and "s/it" in r.stderr
    assert Image.open(out).size == (80, 60)


def test_progress_piped_to_a_log_is_a_few_plain_lines(tmp_path, small_pair):
    """stderr is a pipe here, as in CI or `2> log`: no carriage returns, one line per scale and per
    tenth of the run (not one per iteration), and the last iteration always shown."""
    content, style = small_pair
    r = cli(content, style, "-o", tmp_path / "log.png", "--size", 80, "--start-size", 40,
            "--scale-steps", "24,8,8")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if "s/it" in l]
    assert 3 <= len(lines) <= 13, r.stderr
    assert lines[-1].startswith("40/40 80×60"), lines[-1]
    sizes = [l.split()[1] for l in lines]
    scales = list(dict.fromkeys(sizes))
    assert len(scales) == 3 and scales[0] == "40×30" and scales[-1] == "80×60", sizes
    first = [l.split()[0] for l in lines]
    assert "25/40" in first and "33/40" in first, "a new scale's first iteration is shown: " + str(first)


@pytest.mark.parametrize("case", ["missing_content", "missing_style", "unreadable", "bad_layer", "bad_weights"])
def test_bad_input_one_line_exit_2_no_output(tmp_path, small_pair, case):
    content, style = small_pair
    out = tmp_path / "never.png"
    args = [content, style]
    extra = []
    if case == "missing_content":
        args = [tmp_path / "nope.jpg", style]
    elif case == "missing_style":
        args = [content, tmp_path / "nope.png"]
    elif case == "unreadable":
        bad = tmp_path / "broken.jpg"
        bad.write_bytes(b"\xff\xd8 this is not a jpeg")
        args = [bad, style]
    elif case == "bad_layer":
        extra = ["--style-layers", "relu9_9"]
    elif case == "bad_weights":
        junk = tmp_path / "junk.pth"
        junk.write_bytes(b"junk")
        extra = ["--weights", junk]
    r = cli(*args, "-o", out, "--size", 32, "--steps", 1, "--start-size", 0, *extra)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nst-")]


def test_convert_command(tmp_path):
    out = tmp_path / "vgg19.safetensors"
    r = cli("convert", "default", out)
    assert r.returncode == 0, r.stderr
    import nst_core
    assert nst_core.load_vgg(out).convention == "caffe"
    r = cli("convert", "default", out)
    assert r.returncode == 2 and "already exists" in r.stderr


def test_separate_runs_of_the_same_command_give_the_same_image(tmp_path):
    """A user re-running a command (or a workflow) gets the same picture. Each run is a fresh
    process with its own string-hash seed. torch's CPU sqrt had changed in its last bit from one
    process to the next, and with it the preconditioner and the whole run: at this size, four runs
    gave two or three different images before that was mended."""
    from testlib import IMAGES
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.open(IMAGES / "tubingen.jpg").resize((128, 96)).save(content)
    Image.open(IMAGES / "starry_night.jpg").resize((128, 101)).save(style)
    outs = []
    for i in range(4):
        out = tmp_path / f"run{i}.png"
        r = subprocess.run([sys.executable, "-m", "nst_core", str(content), str(style), "-o", str(out),
                            "--size", "128", "--start-size", "0", "--steps", "10", "--precision", "fp32", "-q"],
                           capture_output=True, text=True, cwd=ROOT, timeout=600,
                           env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=str(i)))
        assert r.returncode == 0, r.stderr
        outs.append(np.asarray(Image.open(out)).astype(np.int16))
    diffs = [float(np.abs(outs[0] - o).mean()) for o in outs[1:]]
    assert diffs == [0.0, 0.0, 0.0], f"mean difference to the first run (of 255): {diffs}"


def test_regions_pair_masks_of_the_photo_with_masks_of_the_painting(tmp_path, small_pair):
    content, style = small_pair
    top, bottom = Image.new("L", (80, 60), 0), Image.new("L", (80, 60), 0)
    top.paste(255, (0, 0, 80, 30))
    bottom.paste(255, (0, 30, 80, 60))
    left = Image.new("L", (64, 40), 0)
    left.paste(255, (0, 0, 32, 40))
    for name, im in (("top.png", top), ("bottom.png", bottom), ("left.png", left)):
        im.save(tmp_path / name)
    out = tmp_path / "out.png"
    r = cli(content, style, "-o", out, "-s", 48, "--steps", 3, "--start-size", 0, "-q",
            "--regions", f"{tmp_path / 'top.png'}:{tmp_path / 'left.png'}", f"{tmp_path / 'bottom.png'}:{style}")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (48, 36)
    r = cli(content, style, "-o", tmp_path / "bad.png", "-s", 48, "--steps", 1, "-q", "--regions", "top.png")
    assert r.returncode == 2 and "CONTENT_MASK:STYLE_MASK" in r.stderr and not (tmp_path / "bad.png").exists()
