"""Which default balance keeps the photo and paints it?

A sweep of style-layer weightings × content weights over the five reference pairs, each output
scored by an independent judge (the original VGG19, plain torch here, not the training loss):
content = relative squared distance of relu4_2 features to the photo's; style = mean over
relu1_1…relu5_1 of the relative squared distance of Gram matrices to the painting's (resized to
the output's long side). neural-style's published outputs are scored the same way.

    python bench/calibrate.py --images ../shared/images --reference ../shared/reference/neural-style --out OUT
Writes OUT/calibration.json, OUT/calibration.md and OUT/outputs.tar (both, and every output as a JPEG).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nst_core  # noqa: E402
from bench.common import scratch  # noqa: E402

PAIRS = [("tubingen_starry", "tubingen.jpg", "starry_night.jpg"),
         ("tubingen_scream", "tubingen.jpg", "the_scream.jpg"),
         ("tubingen_shipwreck", "tubingen.jpg", "shipwreck.jpg"),
         ("golden_gate_scream", "golden_gate.jpg", "the_scream.jpg"),
         ("golden_gate_starry", "golden_gate.jpg", "starry_night_crop.png")]
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SCHEMES = {"equal": (1, 1, 1, 1, 1), "inv_channels": (4, 2, 1, 0.5, 0.5),
           "shallow": (4, 2, 1, 0.25, 0.1), "no_deep": (4, 2, 1, 0.25, 0)}


def gram(f: torch.Tensor) -> torch.Tensor:
    m = f[0].reshape(f.shape[1], -1).double()
    return m @ m.t() / m.shape[1]


@torch.no_grad()
def judge(vgg, out: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor):
    """(content distance, style distance) of ``out`` against the photo and the painting."""
    hw = tuple(out.shape[-2:])
    layers = list(STYLE_LAYERS) + ["relu4_2"]
    fo = vgg(out.float(), layers)
    fp = vgg(nst_core.resize(photo, hw), ["relu4_2"])
    fs = vgg(nst_core.resize_long(painting, max(hw)), list(STYLE_LAYERS))
    a, b = fo["relu4_2"].double(), fp["relu4_2"].double()
    content = float((a - b).pow(2).sum() / b.pow(2).sum())
    style = sum(float((gram(fo[n]) - gram(fs[n])).pow(2).sum() / gram(fs[n]).pow(2).sum()) for n in STYLE_LAYERS)
    return content, style / len(STYLE_LAYERS)


def configs(args):
    """``scheme:content_weight`` entries, in the order given (the likeliest first, in case the budget ends)."""
    for entry in args.configs.split(","):
        scheme, cw = entry.split(":")
        yield f"{scheme}_c{cw}", dict(zip(STYLE_LAYERS, SCHEMES[scheme])), float(cw)


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="../shared/images")
    p.add_argument("--reference", default="../shared/reference/neural-style")
    p.add_argument("--out", default=str(scratch("calibration")),
                   help="results folder (bench/results/calibration to update the committed ones)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--configs", default="inv_channels:5,inv_channels:10,shallow:5,shallow:10,no_deep:5,equal:5")
    p.add_argument("--pairs", default=",".join(n for n, _, _ in PAIRS))
    p.add_argument("--budget", type=float, default=0, help="seconds; stop starting new runs after this (0: none)")
    args = p.parse_args()
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = nst_core.load_vgg(device=device)
    judge_vgg = nst_core.load_vgg(device=device)
    rows, tar = [], tarfile.open(out / "outputs.tar", "w")
    pairs = []
    for name, content_file, style_file in PAIRS:
        if name not in args.pairs.split(","):
            continue
        photo = nst_core.load_image(Path(args.images) / content_file).to(device)
        painting = nst_core.load_image(Path(args.images) / style_file).to(device)
        pairs.append((name, photo, painting))
        ref = Path(args.reference) / f"{name}.png"
        if ref.is_file():
            c, s = judge(judge_vgg, nst_core.load_image(ref).to(device), photo, painting)
            rows.append(dict(pair=name, config="neural-style", content=c, style=s, seconds=None))
            print(f"{name:20s} {'neural-style':24s} content {c:.3f} style {s:.4f}", flush=True)
    for cfg, layers, cw in configs(args):
        if args.budget and time.perf_counter() - start > args.budget:
            print(f"budget spent: {cfg} and later not run", flush=True)
            break
        for name, photo, painting in pairs:
            t0 = time.perf_counter()
            res = nst_core.stylize(model, nst_core.ContentTarget(photo), [nst_core.StyleTarget(painting, layers=layers)],
                                   nst_core.LossWeights(content=cw), nst_core.Options(size=args.size))
            if device.type == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            c, s = judge(judge_vgg, res.image, photo, painting)
            rows.append(dict(pair=name, config=cfg, content=c, style=s, seconds=secs))
            print(f"{name:20s} {cfg:24s} content {c:.3f} style {s:.4f} {secs:.1f}s", flush=True)
            buf = io.BytesIO()
            nst_core.to_pil(res.image.cpu()).save(buf, "JPEG", quality=88)
            add_file(tar, f"{name}__{cfg}.jpg", buf.getvalue())
    lines = ["| pair | config | content | style | s |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['pair']} | {r['config']} | {r['content']:.3f} | {r['style']:.4f} | "
              f"{'' if r['seconds'] is None else format(r['seconds'], '.1f')} |" for r in rows]
    for name, data in (("calibration.json", json.dumps(rows, indent=1)), ("calibration.md", "\n".join(lines) + "\n")):
        (out / name).write_text(data)
        add_file(tar, name, data.encode())
    tar.close()


if __name__ == "__main__":
    main()
