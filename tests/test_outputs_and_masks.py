"""Outputs checked before the run (folders, clips, free space) with messages naming the user's
path, and region masks whose transparency means "not in the region"."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst_core import cli, load_mask
from nst_core.video import clips

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "samples"
CLIP = ASSETS / "bunny.mp4"


def refused(capsys, *args) -> str:
    """Run the CLI; it must exit 2 with one error line (no traceback). A weights file that does not
    exist is given: a message about anything else proves the check came before the model loaded."""
    code = cli.main([str(a) for a in args] + ["--weights", "/nonexistent/vgg.pth", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert "vgg.pth" not in err, f"the check came too late: {err}"
    return err


# ---------------------------------------------------------------------------------------------
# Masks

def _rgba_half_transparent(path: Path, w=40, h=30) -> None:
    im = Image.new("RGBA", (w, h), (255, 255, 255, 255))
    im.paste((255, 255, 255, 0), (w // 2, 0, w, h))     # white but fully transparent on the right
    im.save(path)


def test_a_masks_transparent_part_is_outside_the_region(tmp_path):
    _rgba_half_transparent(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png")
    assert m.shape == (30, 40)
    assert torch.equal(m[:, :20], torch.ones(30, 20)) and torch.equal(m[:, 20:], torch.zeros(30, 20))
    Image.new("L", (8, 8), 51).save(tmp_path / "grey.png")           # no alpha: brightness alone
    assert torch.allclose(load_mask(tmp_path / "grey.png"), torch.full((8, 8), 0.2))
    Image.new("LA", (8, 8), (255, 128)).save(tmp_path / "half.png")   # white at half opacity
    assert torch.allclose(load_mask(tmp_path / "half.png"), torch.full((8, 8), 128 / 255))


def test_cli_regions_take_the_mask_transparency_into_account(tmp_path):
    _rgba_half_transparent(tmp_path / "m.png", 64, 48)
    assert cli._grey(str(tmp_path / "m.png"))[:, 32:].max() == 0


def test_a_region_mask_that_selects_nothing_is_refused_before_the_run(tmp_path, pair, capsys):
    Image.new("RGBA", (64, 48), (255, 255, 255, 0)).save(tmp_path / "clear.png")   # white, all transparent
    err = refused(capsys, pair[0], pair[1], "-o", tmp_path / "o.png", "-s", 32, "--regions",
                  f"{tmp_path / 'clear.png'}:{tmp_path / 'clear.png'}")
    assert "selects nothing" in err and "clear.png" in err
    assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------------------------------------
# Clip outputs: checked before any frame is stylised

def test_clip_into_a_folder_that_is_a_file_refused_before_the_run(tmp_path, pair, capsys):
    (tmp_path / "afile").write_text("x")
    err = refused(capsys, CLIP, pair[1], "-o", tmp_path / "afile" / "out.mp4", "-s", 32, "--frames", 2)
    assert str(tmp_path / "afile") in err and ".nst-" not in err


def test_frames_into_a_path_that_is_a_file_or_a_full_folder_refused_before_the_run(tmp_path, pair, capsys):
    (tmp_path / "frames").write_text("x")            # no suffix: meant as a folder of frames, but a file
    err = refused(capsys, CLIP, pair[1], "-o", tmp_path / "frames", "-s", 32, "--frames", 2)
    assert "is a file" in err and str(tmp_path / "frames") in err
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    err = refused(capsys, CLIP, pair[1], "-o", full, "-s", 32, "--frames", 2)
    assert "not empty" in err and (full / "keep.txt").read_text() == "mine"


def test_clip_without_room_on_the_disk_refused_before_the_run(tmp_path, pair, capsys, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    err = refused(capsys, CLIP, pair[1], "-o", tmp_path / "out.mp4", "-s", 64, "--frames", 3)
    assert "needs about" in err and "free" in err and str(tmp_path) in err


def test_a_failed_clip_write_names_the_users_path_not_a_temporary_file(tmp_path, monkeypatch):
    def fail(*_):
        raise OSError(28, "No space left on device", str(tmp_path / ".nst-abc" / "out.mp4"))
    monkeypatch.setattr(clips, "_encode", fail)
    with pytest.raises(clips.OutputError) as e:
        clips.write_clip(torch.rand(2, 3, 16, 16), tmp_path / "out.mp4")
    assert str(tmp_path / "out.mp4") in str(e.value) and ".nst-" not in str(e.value)
    assert "No space left" in str(e.value)
    assert not list(tmp_path.iterdir()), "a temporary folder was left behind"
