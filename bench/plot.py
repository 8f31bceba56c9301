"""Loss-against-time plots drawn with PIL only (no matplotlib needed)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

PALETTE = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14),
           (140, 86, 75), (227, 119, 194), (23, 190, 207), (188, 189, 34)]
BLACK, GREY, LIGHT = (0, 0, 0), (120, 120, 120), (225, 225, 225)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, n: int = 6) -> List[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:g}"


class Series:
    def __init__(self, label: str, xs: Sequence[float], ys: Sequence[float], color, width: int = 2,
                 dashed: bool = False, marker: Optional[Tuple[float, float]] = None):
        self.label, self.color, self.width, self.dashed, self.marker = label, color, width, dashed, marker
        pts = [(float(x), float(y)) for x, y in zip(xs, ys) if y is not None and y > 0 and math.isfinite(y)]
        self.points = pts


def _panel(draw: ImageDraw.ImageDraw, box, title: str, series: List[Series], hlines: List[Tuple[float, tuple, str]],
           xlabel: str, ylabel: str, font, small, x_max: Optional[float] = None, xlog: bool = True) -> None:
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 70, x1 - 15, y0 + 30, y1 - 45
    draw.text(((x0 + x1) / 2, y0 + 6), title, fill=BLACK, font=font, anchor="ma")
    shown = [p for s in series for p in s.points if p[0] > 0 or not xlog]
    xs = [p[0] for p in shown]
    ys = [p[1] for p in shown] + [h[0] for h in hlines if h[0] > 0]
    if not xs or not ys:
        draw.text(((left + right) / 2, (top + bottom) / 2), "no data", fill=GREY, font=font, anchor="mm")
        return
    xmax = x_max if x_max else max(xs)
    xmax = xmax if xmax > 0 else 1.0
    xmin = 0.0
    if xlog:
        xmin = min(xs)
        lo, hi = math.log10(xmin), math.log10(xmax)
        if hi - lo < 1.0:
            lo = hi - 1.0
        xmin, xmax = 10 ** (lo - 0.03 * (hi - lo)), 10 ** (hi + 0.03 * (hi - lo))
    ylo, yhi = math.log10(min(ys)), math.log10(max(ys))
    if yhi - ylo < 0.5:
        mid = (yhi + ylo) / 2
        ylo, yhi = mid - 0.25, mid + 0.25
    pad = 0.05 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad

    def px(x):
        if xlog:
            f = (math.log10(max(x, xmin)) - math.log10(xmin)) / (math.log10(xmax) - math.log10(xmin))
        else:
            f = x / xmax
        return left + (right - left) * min(max(f, 0.0), 1.0)

    def py(y):
        return bottom - (bottom - top) * (math.log10(y) - ylo) / (yhi - ylo)

    # grid and ticks
    for d in range(math.floor(ylo), math.ceil(yhi) + 1):
        for m in range(1, 10):
            v = m * 10 ** d
            lv = math.log10(v)
            if ylo <= lv <= yhi:
                yy = py(v)
                draw.line([(left, yy), (right, yy)], fill=LIGHT if m > 1 else (200, 200, 200), width=1)
                if m == 1 or (yhi - ylo < 1.5 and m in (2, 5)):
                    draw.text((left - 6, yy), _fmt_tick(v), fill=BLACK, font=small, anchor="rm")
    if xlog:
        xticks = [m * 10 ** d for d in range(math.floor(math.log10(xmin)), math.ceil(math.log10(xmax)) + 1)
                  for m in (1, 2, 5) if xmin <= m * 10 ** d <= xmax]
    else:
        xticks = _nice_ticks(0, xmax)
    for t in xticks:
        xx = px(t)
        draw.line([(xx, top), (xx, bottom)], fill=LIGHT, width=1)
        draw.text((xx, bottom + 5), _fmt_tick(t), fill=BLACK, font=small, anchor="ma")
    draw.rectangle([left, top, right, bottom], outline=BLACK, width=1)
    draw.text(((left + right) / 2, bottom + 24), xlabel, fill=BLACK, font=small, anchor="ma")
    draw.text((x0 + 4, top - 18), ylabel, fill=BLACK, font=small, anchor="la")

    for value, color, label in hlines:
        if value > 0 and ylo <= math.log10(value) <= yhi:
            yy = py(value)
            for xa in range(int(left), int(right), 12):
                draw.line([(xa, yy), (min(xa + 6, right), yy)], fill=color, width=1)
            draw.text((right - 4, yy - 3), label, fill=color, font=small, anchor="rd")
    for s in series:
        pts = [(px(x), py(y)) for x, y in s.points if x <= xmax * 1.0001 and (x > 0 or not xlog)]
        if len(pts) == 1:
            cx, cy = pts[0]
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=s.color)
        elif pts:
            if s.dashed:
                for a, b in zip(pts[::2], pts[1::2]):
                    draw.line([a, b], fill=s.color, width=s.width)
            else:
                draw.line(pts, fill=s.color, width=s.width, joint="curve")
        if s.marker and s.marker[1] > 0 and s.marker[0] <= xmax and (s.marker[0] > 0 or not xlog):
            cx, cy = px(s.marker[0]), py(s.marker[1])
            draw.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], outline=s.color, width=2)


def loss_vs_time(path, curves: Dict[str, dict], targets: Tuple[float, float], title: str,
                 x_max: Optional[float] = None, width: int = 1300, height: int = 560, xlog: bool = True) -> None:
    """Two panels (content, style by the metric), log y, wall seconds on x.

    ``curves``: label → {"t": [...], "content": [...], "style": [...], "color": (r, g, b) or None,
    "width": int, "reach": t or None}. ``targets``: pastiche's final (content, style).
    """
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)
    draw.text((width / 2, 8), title, fill=BLACK, font=font, anchor="ma")
    top = 34
    legend_h = 22 * ((len(curves) + 2) // 3) + 10
    panel_h = height - top - legend_h
    half = width // 2
    for idx, key in enumerate(("content", "style")):
        series = []
        for i, (label, c) in enumerate(curves.items()):
            color = c.get("color") or PALETTE[i % len(PALETTE)]
            reach = c.get("reach")
            marker = None
            if reach is not None:
                # the metric value at the reach time
                for t, v in zip(c["t"], c[key]):
                    if abs(t - reach) < 1e-9:
                        marker = (t, v)
            series.append(Series(label, c["t"], c[key], color, c.get("width", 2), marker=marker))
        hl = [(targets[idx], GREY, "pastiche final")] if targets and targets[idx] else []
        _panel(draw, (idx * half, top, (idx + 1) * half, top + panel_h),
               f"{key} loss (fixed metric, log scale)", series, hl,
               "wall time (s, log scale; points at t = 0 not shown)" if xlog else "wall time (s)", key, font, small,
               x_max, xlog)
    # legend
    y = top + panel_h + 6
    col_w = width // 3
    for i, (label, c) in enumerate(curves.items()):
        color = c.get("color") or PALETTE[i % len(PALETTE)]
        xx, yy = 20 + (i % 3) * col_w, y + 22 * (i // 3)
        draw.line([(xx, yy + 8), (xx + 30, yy + 8)], fill=color, width=3)
        draw.text((xx + 38, yy + 1), label, fill=BLACK, font=small)
    img.save(path)
