"""A loss plot (log scale, one line per term) drawn with PIL, as a ComfyUI IMAGE."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

COLORS = {
    "total": (20, 20, 20),
    "content": (31, 119, 180),
    "style": (214, 39, 40),
    "tv": (44, 160, 44),
    "temporal": (148, 103, 189),
}
_OTHER = [(255, 127, 14), (140, 86, 75), (227, 119, 194), (127, 127, 127)]
ORDER = ("total", "content", "style", "tv", "temporal")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fmt(v: float) -> str:
    return f"1e{int(v)}" if abs(v - round(v)) < 1e-9 else f"{10 ** v:.2g}"


def loss_plot(history: Dict[str, List[float]], scale_starts: Sequence[int] = (),
              width: int = 640, height: int = 400, title: Optional[str] = None) -> Image.Image:
    """Loss terms per iteration on a log scale; dashed lines where a new scale began."""
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(14), _font(11)
    left, right, top, bottom = 62, 16, 30, 42
    pw, ph = width - left - right, height - top - bottom
    names = [n for n in ORDER if n in history] + sorted(n for n in history if n not in ORDER)
    n_iter = max((len(v) for v in history.values()), default=0)
    vals = [v for n in names for v in history[n] if v is not None and math.isfinite(v) and v > 0]
    d.text((left, 8), title or f"loss per iteration ({n_iter} iterations, log scale)", fill=(0, 0, 0), font=font)
    d.rectangle([left, top, left + pw, top + ph], outline=(0, 0, 0))
    if n_iter == 0 or not vals:
        d.text((left + 10, top + ph // 2), "no loss values recorded", fill=(0, 0, 0), font=font)
        return img
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo + 1

    def xy(i: int, v: float):
        x = left + (i / max(n_iter - 1, 1)) * pw
        y = top + ph - (math.log10(v) - lo) / (hi - lo) * ph
        return x, y

    step = max(1, math.ceil((hi - lo) / 8))
    for e in range(lo, hi + 1, step):  # horizontal grid and y labels at powers of ten
        _, y = xy(0, 10.0 ** e)
        d.line([(left, y), (left + pw, y)], fill=(225, 225, 225))
        d.text((4, y - 6), _fmt(e), fill=(60, 60, 60), font=small)
    for k, s in enumerate(scale_starts):  # coarse-to-fine: where each scale began
        if 0 < s < n_iter:
            x, _ = xy(s, 10.0 ** lo)
            for y in range(top, top + ph, 8):
                d.line([(x, y), (x, min(y + 4, top + ph))], fill=(150, 150, 150))
            d.text((x + 3, top + 3), f"scale {k + 1}", fill=(110, 110, 110), font=small)
    for i, tick in enumerate(np.linspace(1, n_iter, num=min(6, n_iter)).round().astype(int)):
        x, _ = xy(int(tick) - 1, 10.0 ** lo)
        d.line([(x, top + ph), (x, top + ph + 4)], fill=(0, 0, 0))
        d.text((x - 8, top + ph + 6), str(int(tick)), fill=(60, 60, 60), font=small)
    d.text((left + pw // 2 - 24, height - 18), "iteration", fill=(0, 0, 0), font=small)
    other = iter(_OTHER * 4)
    lx = left + 8
    for n in names:
        color = COLORS.get(n) or next(other)
        seg: List[tuple] = []
        for i, v in enumerate(history[n]):
            if v is not None and math.isfinite(v) and v > 0:
                seg.append(xy(i, v))
                continue
            if len(seg) > 1:  # zero or non-finite: break the line (log scale)
                d.line(seg, fill=color, width=2)
            seg = []
        if len(seg) > 1:
            d.line(seg, fill=color, width=2)
        elif len(seg) == 1:
            x, y = seg[0]
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        last = next((v for v in reversed(history[n]) if v is not None and math.isfinite(v)), None)
        label = f"{n} {last:.3g}" if last is not None else n
        d.line([(lx, top + ph - 10), (lx + 14, top + ph - 10)], fill=color, width=3)
        d.text((lx + 18, top + ph - 17), label, fill=color, font=small)
        lx += 26 + int(d.textlength(label, font=small))
    return img


def pil_to_image(img: Image.Image) -> torch.Tensor:
    """PIL RGB → ComfyUI IMAGE ``[1, H, W, 3]`` float 0..1."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).unsqueeze(0)
