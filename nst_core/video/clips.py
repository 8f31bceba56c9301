"""Video files and folders of frames in and out (PyAV decodes and encodes; nothing hand-rolled).

A clip is ``[N, 3, H, W]`` RGB 0..1 plus its frame rate. Audio is not carried over.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List

import numpy as np
import torch

from ..files import OutputError, check_folder_writable, check_free_space
from ..image import ImageError, fit_size, load_image, resize, save_image
from ..spec import option

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_FPS = Fraction(24)
# Container suffix -> (encoder, pixel format, encoder options).
_ENCODERS = {
    ".mp4": ("libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".mov": ("libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".mkv": ("libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".webm": ("libvpx-vp9", "yuv420p", {"crf": "30", "b": "0"}),
    ".gif": ("gif", "rgb8", {}),
}


@dataclass
class ClipSettings:
    """How the command line reads and writes a clip."""
    frames: int = option(0, "Video: stylise only the first N frames (0: all).", low=0, high=1_000_000)
    fps: float = option(0.0, "Video: the output frame rate (0: the clip's; 24 for a folder of frames).",
                        low=0.0, high=1000.0)


@dataclass
class Clip:
    frames: torch.Tensor       # [N, 3, H, W] RGB 0..1
    fps: Fraction


def is_clip(path) -> bool:
    """A video file or a folder (of frames), as opposed to a single image."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES


def is_clip_output(path) -> bool:
    """Where a clip may go: a video file, or a folder (an existing one, or a name without suffix)."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES or p.suffix == ""


def _fit(frame: torch.Tensor, long_side: int) -> torch.Tensor:
    return frame if long_side <= 0 else resize(frame, fit_size(tuple(frame.shape[-2:]), long_side))


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _folder_frames(folder: Path) -> Iterator[torch.Tensor]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
    if not files:
        raise ImageError(f"no frames in {folder}: put numbered images ({', '.join(FRAME_SUFFIXES)}) there")
    for f in files:
        yield load_image(f)


def _video_frames(path: Path) -> Iterator[torch.Tensor]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                arr = frame.to_ndarray(format="rgb24")
                yield torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    except av.FFmpegError as e:
        raise ImageError(f"cannot read video {path}: {e}") from None


def video_fps(path) -> Fraction:
    """The clip's frame rate (24 for a folder of frames, or when the file does not say)."""
    p = Path(path)
    if p.is_dir():
        return DEFAULT_FPS
    import av

    try:
        with av.open(str(p)) as container:
            s = container.streams.video[0]
            rate = s.average_rate or s.guessed_rate or s.base_rate
    except (av.FFmpegError, IndexError) as e:
        raise ImageError(f"cannot read video {p}: {e}") from None
    return Fraction(rate) if rate else DEFAULT_FPS


def read_clip(path, max_frames: int = 0, long_side: int = 0) -> Clip:
    """The first ``max_frames`` frames (0: all) of a video file or folder of frames, each resized
    on the way in to ``long_side`` px (0: as they are), so a long clip never sits in memory at full size."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"clip not found: {p}")
    if p.is_file() and p.suffix.lower() not in VIDEO_SUFFIXES:
        raise ImageError(f"unsupported video type {p.suffix!r}; use {', '.join(VIDEO_SUFFIXES)} or a folder of frames")
    fps = video_fps(p)
    frames: List[torch.Tensor] = []
    for frame in (_folder_frames(p) if p.is_dir() else _video_frames(p)):
        frame = _fit(frame, long_side)
        if frames and frame.shape != frames[0].shape:
            raise ImageError(f"frame {len(frames) + 1} of {p} is {frame.shape[-1]}×{frame.shape[-2]}, the first "
                             f"{frames[0].shape[-1]}×{frames[0].shape[-2]}: all frames must have one size")
        frames.append(frame)
        if 0 < max_frames <= len(frames):
            break
    if not frames:
        raise ImageError(f"{p} has no frames")
    return Clip(torch.cat(frames), fps)


def _even(frames: torch.Tensor) -> torch.Tensor:
    """4:2:0 video needs even sides: drop a last odd row/column."""
    h, w = frames.shape[-2:]
    return frames[..., : h - h % 2, : w - w % 2]


def _encode(frames: torch.Tensor, path: Path, fps: Fraction) -> None:
    import av

    codec, pix_fmt, options = _ENCODERS[path.suffix.lower()]
    if pix_fmt == "yuv420p":
        frames = _even(frames)
    arrs = (frames.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    with av.open(str(path), mode="w", format="gif" if codec == "gif" else None) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = arrs.shape[2], arrs.shape[1]
        stream.pix_fmt = pix_fmt
        stream.options = dict(options)
        for arr in arrs:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_folder(frames: torch.Tensor, folder: Path, overwrite: bool) -> Path:
    _check_folder_output(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, 1):
        save_image(frame.unsqueeze(0), folder / f"frame_{i:05d}.png", overwrite=True)
    return folder


def write_clip(frames: torch.Tensor, path, fps: Fraction = DEFAULT_FPS, overwrite: bool = False) -> Path:
    """Write ``[N, 3, H, W]`` as a video file (atomically) or, for a folder, as numbered PNGs."""
    p = Path(path)
    if not is_clip_output(p):
        raise ImageError(f"unsupported video type {p.suffix!r}; use {', '.join(VIDEO_SUFFIXES)} or a folder")
    if p.is_dir() or p.suffix == "":
        return _write_folder(frames, p, overwrite)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists; use --overwrite to replace it")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=str(p.parent), prefix=".nst-") as tmp:
            part = Path(tmp) / p.name
            _encode(frames, part, Fraction(fps).limit_denominator(1001))
            shutil.move(str(part), str(p))
    except OSError as e:   # the temporary file's name would mean nothing to the user
        raise OutputError(f"cannot write {p}: {e.strerror or e}") from None
    return p


def check_cli_paths(content, output, frames: int, overwrite: bool) -> bool:
    """Checks the CLI's paths before any work; True when the content is a clip (video or folder)."""
    clip, out = is_clip(content), Path(output)
    if not clip:
        if frames:
            raise ImageError(f"--frames is for videos; {content} is a single image")
        return False
    if not is_clip_output(out):
        raise ImageError(f"the content is a video: give an output video ({', '.join(VIDEO_SUFFIXES)}) or a "
                         f"folder, not {out.name}")
    if out.is_dir() or out.suffix == "":
        _check_folder_output(out, overwrite)
    else:
        if out.is_file() and not overwrite:
            raise FileExistsError(f"{out} already exists; use --overwrite to replace it, or choose another name")
        check_folder_writable(out.parent)
    return True


def _check_folder_output(folder: Path, overwrite: bool) -> None:
    """A folder of frames: a folder (not a file), writable, and empty unless ``overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder for frames; give a video name "
                          f"({', '.join(VIDEO_SUFFIXES)}) or a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} is not empty; use --overwrite to write frames into it, or choose another")
    check_folder_writable(folder)


def check_clip_space(output, n_frames: int, hw) -> None:
    """Room on the disk for ``n_frames`` frames of ``hw`` px, as PNGs in a folder or a video file (whose
    encoder writes beside it first): generously their raw size, which a PNG rarely exceeds."""
    out = Path(output)
    folder = out if out.is_dir() or out.suffix == "" else out.parent
    check_free_space(folder, n_frames * hw[0] * hw[1] * 3, f"writing {n_frames} frames of {hw[1]}×{hw[0]} px to {out}")
