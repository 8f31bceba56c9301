"""Video frames: where the previous stylised frame(s) go in the next one (Ruder et al. 2016).

Dense optical flow between the *input* frames (flow.py) moves the previous stylised frame onto the
current one; the temporal loss applies only where the flow is reliable (forward–backward consistent,
off motion boundaries, inside the frame). With ``long_term`` > 0, frames further back fill the
pixels the previous frame cannot (each pixel follows the nearest frame where it is reliable, which is
Ruder et al.'s long-term loss with disjoint weights). A frame that too few pixels can follow (a scene
cut) starts fresh. ``flow="shift"`` keeps the older method: one global shift by phase correlation.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import color as colorlib
from . import flow as flowlib
from ..image import resize
from ..options import FLOWS, VideoOptions

CUT_DIFFERENCE = 0.1      # grey-level difference (0..1) above which a followed pixel does not match
SAME_LOOK = 0.1           # RGB difference (0..1) at which a followed pixel counts as 1/e alike


@dataclass
class Guide:
    """The previous stylised frame(s), moved onto the current frame; all ``[1, *, H, W]``."""
    warped: torch.Tensor       # [1, 3, H, W] where to start, and what the temporal loss pulls towards
    valid: torch.Tensor        # [1, 1, H, W] soft-edged: where ``warped`` has content (else start afresh)
    reliable: torch.Tensor     # [1, 1, H, W] where the temporal loss applies
    matched: float             # fraction of pixels that follow the previous frame and look alike


def long_term_offsets(long_term: int) -> Tuple[int, ...]:
    """Which previous frames a frame follows: 1, and with ``long_term`` = k > 1 also k, 2k, 4k
    back (Ruder et al. use 1, 10, 20, 40)."""
    if long_term < 0:
        raise ValueError(f"long_term must be 0 (previous frame only) or more, got {long_term}")
    return (1,) if long_term <= 1 else (1, long_term, 2 * long_term, 4 * long_term)


def estimate_shift(a: torch.Tensor, b: torch.Tensor) -> Tuple[int, int]:
    """Integer (dy, dx) such that ``b`` ≈ ``a`` moved by (dy, dx), by phase correlation."""
    ga, gb = colorlib.luminance(a)[0, 0].float(), colorlib.luminance(b)[0, 0].float()
    fa, fb = torch.fft.rfft2(ga - ga.mean()), torch.fft.rfft2(gb - gb.mean())
    r = fb * fa.conj()
    r = r / r.abs().clamp_min(1e-8)
    corr = torch.fft.irfft2(r, s=ga.shape)
    idx = int(torch.argmax(corr))
    h, w = ga.shape
    dy, dx = idx // w, idx % w
    return (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)


def shift_image(x: torch.Tensor, dy: int, dx: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Move ``x`` by (dy, dx); returns the moved image and a validity mask ([1, 1, H, W])."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    valid = torch.zeros((1, 1, h, w), device=x.device, dtype=x.dtype)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    valid[..., yd, xd] = 1
    return out, valid


def soft_edges(valid: torch.Tensor, r: int) -> torch.Tensor:
    """A 0/1 validity mask with linear ramps, ``r`` px wide, inside its edges that border invalid
    areas (image borders keep 1): the previous frame fades into the area entering the view."""
    blur = F.avg_pool2d(valid, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return valid * (2 * blur - 1).clamp(0, 1)


def _ramp(hw: Sequence[int]) -> int:
    return max(2, max(hw) // 32)


def looks_alike(moved_in: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """``[1, 1, H, W]`` near 1 where the moved previous input looks like this frame, falling to 0 where
    it changed (light, a new object, a wrong flow): the previous paint does not belong there."""
    return torch.exp(-((moved_in - frame).abs().mean(1, keepdim=True) / SAME_LOOK) ** 2)


def _matched(moved_in: torch.Tensor, frame: torch.Tensor, mask: torch.Tensor) -> float:
    """Fraction of all pixels inside ``mask`` whose moved input looks like this frame's."""
    diff = (colorlib.luminance(moved_in) - colorlib.luminance(frame)).abs()
    return float((mask * (diff < CUT_DIFFERENCE)).mean())


def follow_shift(prev_in: torch.Tensor, prev_out: torch.Tensor, frame: torch.Tensor) -> Guide:
    """The older method: one global shift (phase correlation); the temporal loss applies where the
    input, moved by that shift, did not change."""
    hw = tuple(frame.shape[-2:])
    prev_small = resize(prev_in, hw)
    dy, dx = estimate_shift(prev_small, frame)
    warped, inside = shift_image(prev_out, dy, dx)
    valid = soft_edges(inside, _ramp(hw))
    moved_in, _ = shift_image(prev_small, dy, dx)
    return Guide(warped, valid, valid * looks_alike(moved_in, frame), _matched(moved_in, frame, inside))


@dataclass
class _Past:
    gray: np.ndarray           # the input frame, grey uint8, at the output's size
    image: torch.Tensor        # the input frame, RGB, at the output's size
    out: torch.Tensor          # the stylised frame


class FrameGuide:
    """Follows a run's frames: ``follow(frame)`` before stylising a frame, ``remember(frame, out)`` after.

    ``follow`` returns None for the first frame and after a scene cut (stylise that frame afresh),
    else a ``Guide``. Frames may come at any size: the past is resized to the asked frame's size.
    """

    def __init__(self, video: VideoOptions):
        self.method = video.flow
        if self.method not in FLOWS:
            raise ValueError(f"unknown flow method {self.method!r}; use one of {', '.join(FLOWS)}")
        self.offsets = long_term_offsets(video.long_term)
        self.scene_cut = video.scene_cut
        self.past: Deque[_Past] = deque(maxlen=max(self.offsets))
        self.cuts: List[int] = []          # indices (0-based, in remember order) of frames that started fresh
        self._seen = 0

    def remember(self, frame_in: torch.Tensor, frame_out: torch.Tensor) -> None:
        """Keep a finished frame (input at any size, stylised output ``[1, 3, h, w]``)."""
        small = resize(frame_in.detach(), tuple(frame_out.shape[-2:]))
        self.past.append(_Past(flowlib.gray_u8(small), small, frame_out.detach()))
        self._seen += 1

    def follow(self, frame: torch.Tensor) -> Optional[Guide]:
        """The past moved onto ``frame`` (``[1, 3, H, W]``, the input at the working size), or None."""
        if not self.past:
            return None
        guide = self._follow_previous(frame)
        if guide.matched < self.scene_cut:
            self.cuts.append(self._seen)
            self.past.clear()
            return None
        return self._add_long_term(guide, frame)

    def _at(self, back: int, hw) -> Tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        p = self.past[-back]
        if tuple(p.out.shape[-2:]) == tuple(hw):
            return p.gray, p.image, p.out
        image = resize(p.image, hw)
        return flowlib.gray_u8(image), image, resize(p.out, hw)

    def _follow_previous(self, frame: torch.Tensor) -> Guide:
        hw = tuple(frame.shape[-2:])
        gray, image, out = self._at(1, hw)
        if self.method == "shift":
            return follow_shift(image, out, frame)
        warped, m, moved_in = self._warp(gray, image, out, frame)
        # Disoccluded or changed pixels start from the photo, not from paint the warp smeared there.
        valid = soft_edges(m.inside * m.consistent, _ramp(hw)) * looks_alike(moved_in, frame)
        matched = _matched(moved_in, frame, m.inside * m.consistent)
        return Guide(warped, valid, valid * (1 - m.boundary), matched)

    def _warp(self, gray, image, out, frame):
        m = flowlib.estimate_motion(gray, flowlib.gray_u8(frame), self.method)
        m = flowlib.Motion(*(t.to(frame.device) for t in (m.backward, m.inside, m.consistent, m.boundary)))
        return flowlib.warp(out, m.backward), m, flowlib.warp(image, m.backward)

    def _add_long_term(self, guide: Guide, frame: torch.Tensor) -> Guide:
        """Pixels the previous frame cannot follow take the nearest older frame that can."""
        if self.method == "shift":
            return guide
        hw = tuple(frame.shape[-2:])
        warped, valid, reliable = guide.warped, guide.valid, guide.reliable
        for back in self.offsets[1:]:
            if back > len(self.past):
                break
            gray, image, out = self._at(back, hw)
            w, m, moved_in = self._warp(gray, image, out, frame)
            # Soft: what the nearer frames leave uncertain (ramps, faint matches) is filled too.
            take = m.reliable * looks_alike(moved_in, frame) * (1 - reliable).clamp(0, 1)
            warped = warped * (1 - take) + w * take
            valid = torch.maximum(valid, take)
            reliable = reliable + take
        return Guide(warped, valid, reliable, guide.matched)
