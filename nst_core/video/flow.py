"""Dense optical flow between video frames, and where it can be trusted (Ruder et al., GCPR 2016).

Flow fields are ``[1, 2, H, W]`` tensors in pixels, (dx, dy), on the grid of the frame they start
from. ``backward`` flow lives on the current frame and points into the previous one: the pixel p of
the current frame was at p + backward(p). OpenCV computes the flow on the CPU; warping runs on the
image's device.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

FLOW_METHODS = ("dis", "farneback")

# Ruder et al.'s thresholds (after Sundaram et al. 2010), in pixels at the flow's own resolution.
OCCLUSION_REL, OCCLUSION_ABS = 0.01, 0.5
BOUNDARY_REL, BOUNDARY_ABS = 0.01, 0.002


@dataclass
class Motion:
    """How the current frame came from the previous one."""
    backward: torch.Tensor     # [1, 2, H, W] current pixel p was at p + backward(p) in the previous frame
    inside: torch.Tensor       # [1, 1, H, W] 1 where p + backward(p) lies inside the previous frame
    consistent: torch.Tensor   # [1, 1, H, W] 1 where forward and backward flow agree (no disocclusion)
    boundary: torch.Tensor     # [1, 1, H, W] 1 on motion boundaries (the flow changes fast there)

    @property
    def reliable(self) -> torch.Tensor:
        """Where the previous frame, moved along the flow, may be trusted pixel for pixel."""
        return self.inside * self.consistent * (1 - self.boundary)


def gray_u8(image: torch.Tensor) -> np.ndarray:
    """``[1, 3, H, W]`` RGB 0..1 (or ``[1, 1, H, W]``) as an ``H×W`` uint8 grey image for OpenCV."""
    x = image.detach()[0].float().clamp(0, 1).cpu()
    g = x[0] if x.shape[0] == 1 else 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    return (g.numpy() * 255.0 + 0.5).astype(np.uint8)


def _flow_np(src: np.ndarray, dst: np.ndarray, method: str) -> np.ndarray:
    """OpenCV flow ``H×W×2`` on ``src``'s grid: src(p) ≈ dst(p + flow(p))."""
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(src, dst, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(src, dst, None, pyr_scale=0.5, levels=4, winsize=15, iterations=3,
                                            poly_n=5, poly_sigma=1.2, flags=0)
    raise ValueError(f"unknown flow method {method!r}; use one of {', '.join(FLOW_METHODS)}")


def optical_flow(src: np.ndarray, dst: np.ndarray, method: str = "dis") -> torch.Tensor:
    """Dense flow ``[1, 2, H, W]`` (CPU) from grey uint8 ``src`` to ``dst``: src(p) ≈ dst(p + flow(p))."""
    if src.shape != dst.shape:
        raise ValueError(f"frames differ in size: {src.shape} vs {dst.shape}; resize them to one size first")
    flow = _flow_np(np.ascontiguousarray(src), np.ascontiguousarray(dst), method)
    return torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0).contiguous()


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid for ``grid_sample`` (align_corners=True) at p + flow(p)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack([gx, gy], dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` sampled at p + flow(p) (bilinear; outside the frame: the nearest edge pixel)."""
    flow = flow.to(device=image.device, dtype=torch.float32)
    out = F.grid_sample(image.float(), _grid(flow), mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """1 where p + flow(p) falls inside the frame ``[1, 1, H, W]``."""
    g = _grid(flow.float())
    ok = (g.abs() <= 1.0 + 1e-6).all(dim=-1)
    return ok.unsqueeze(1).to(flow.dtype)


def _sq(v: torch.Tensor) -> torch.Tensor:
    return (v ** 2).sum(1, keepdim=True)


def consistency(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """1 where following ``backward`` and then ``forward`` (the previous frame's flow to this one)
    returns to the start: |w + ŵ|² ≤ 0.01 (|w|² + |ŵ|²) + 0.5; 0 at disocclusions."""
    fwd_there = warp(forward, backward)
    bad = _sq(backward + fwd_there) > OCCLUSION_REL * (_sq(backward) + _sq(fwd_there)) + OCCLUSION_ABS
    return (~bad).to(backward.dtype)


def motion_boundaries(flow: torch.Tensor) -> torch.Tensor:
    """1 where the flow's gradient is large for its size: |∇u|² + |∇v|² > 0.01 |w|² + 0.002."""
    pad = F.pad(flow, (0, 1, 0, 1), mode="replicate")
    dx = pad[..., :-1, 1:] - pad[..., :-1, :-1]
    dy = pad[..., 1:, :-1] - pad[..., :-1, :-1]
    grad = _sq(dx) + _sq(dy)
    return (grad > BOUNDARY_REL * _sq(flow) + BOUNDARY_ABS).to(flow.dtype)


def estimate_motion(prev_gray: np.ndarray, cur_gray: np.ndarray, method: str = "dis") -> Motion:
    """Backward flow (current → previous), the forward–backward check and motion boundaries."""
    backward = optical_flow(cur_gray, prev_gray, method)
    forward = optical_flow(prev_gray, cur_gray, method)
    return Motion(backward, inside_mask(backward), consistency(backward, forward), motion_boundaries(backward))
