"""A small L-BFGS for one tensor, written to stay off the host: no ``.item()`` in the loop.

Deviations from ``torch.optim.LBFGS`` (one line each):
- one gradient evaluation per iteration and a fixed step of 1 (no line search), as in neural-style;
- curvature pairs with ``sᵀy <= 0`` are marked unused on the device (they do nothing) instead of a host-side test;
- the step comes from the compact form of the inverse Hessian (Byrd, Nocedal & Schnabel 1994), a few
  matrix-vector products, not the two-loop recursion's 4m small steps (each a GPU kernel launch);
- the first step is scaled so the mean pixel change is one 8-bit grey level.
- the initial inverse Hessian is ``γ·P`` with ``P`` a 1/frequency spectral filter (capped at 64×),
  not ``γ·I``: early steps move low frequencies (layout, colour areas) as fast as pixel noise;
- the iterate is projected back into the box [lo, hi] after every step; ``s`` is the step actually
  taken, so the secant pairs stay consistent with the projection;
- a step whose RMS exceeds ``max_step_rms`` is shortened to it (a trust region in place of a line
  search: without it the second step, scaled by one pair's curvature, often overshoots far).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch


class LBFGS:
    def __init__(self, x: torch.Tensor, history_size: int = 20, lo: float = 0.0, hi: float = 1.0,
                 first_step: float = 1.0 / 255.0, precondition=None, max_step_rms: float = 0.05):
        self.x = x
        # ``P(v, out)`` writes P·v into the kept buffer ``out``; without a preconditioner, P = I.
        self.P = precondition or (lambda v, out: out.copy_(v))
        self.m = max(1, int(history_size))
        self.lo, self.hi = lo, hi
        self.first_step = first_step
        self.max_step_rms = max_step_rms
        # Every full-size vector lives in a buffer made here, before the first evaluation: the
        # history in two [m, n] ring buffers and six work rows. Nothing full-size is allocated in a
        # step, nothing made in one evaluation's memory outlives it (on the CPU either would
        # fragment the heap and raise the peak RSS), and every step after the first touches the
        # same buffers (a CUDA graph can replay it).
        n, dev = x.numel(), x.device
        self.S = torch.zeros((self.m, n), device=dev)
        self.Y = torch.zeros_like(self.S)
        # Rows laid out for two [m, n]·[n, k] products: V = (y, g), W = (s, P·y, P·g). Between steps
        # W holds the previous x in place of s, and V and W the previous g and P·g: y = g − g_prev,
        # s = x − x_prev and, P being linear, P·y = P·g − P·g_prev.
        self.V = torch.empty((2, n), device=dev)
        self.W = torch.empty((3, n), device=dev)
        self.d = torch.empty(n, device=dev)
        self.small = _SmallAlgebra(self.m, dev)
        self.started = False    # the first step has no pair yet: the only step that differs

    def step(self, grad: torch.Tensor) -> None:
        """Update ``self.x`` in place, given the gradient at the current ``self.x``."""
        x = self.x.detach()
        g = grad.detach().flatten().float()
        xf = x.flatten().float()
        d = self._next(xf, g) if self.started else self._first(g)
        if self.max_step_rms:
            # RMS(d) = ‖d‖/√n: shorten the step to max_step_rms where it is longer (no host sync).
            limit = self.max_step_rms * math.sqrt(d.numel())
            d.mul_((limit / torch.linalg.vector_norm(d).clamp_min(1e-30)).clamp(max=1.0))
        self.W[0].copy_(xf)     # x_prev for the next step's s
        self.started = True
        with torch.no_grad():
            self.x.add_(d.view_as(self.x).to(self.x.dtype)).clamp_(self.lo, self.hi)

    def _first(self, g: torch.Tensor) -> torch.Tensor:
        """−P·g scaled so that the mean pixel change is ``first_step``."""
        pg = self.P(g, self.W[2])
        self.V[1].copy_(g)     # a copy: the gradient's own buffer is freed now, not next step
        return torch.mul(pg, -self.first_step / pg.abs().mean().clamp_min(1e-30), out=self.d)

    def _next(self, xf: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Store the pair (s, y) in the next slot (a pair with ``sᵀy <= 0`` is marked unused, no host
        test), then −H·g with H the L-BFGS inverse Hessian in its compact form (Byrd, Nocedal &
        Schnabel 1994): two [m, n] products for every dot product with the history, two to apply it."""
        y, g_prev = self.V[0], self.V[1]
        s, py, pg = self.W[0], self.W[1], self.W[2]
        torch.sub(g, g_prev, out=y)
        g_prev.copy_(g)
        torch.sub(xf, s, out=s)              # s held x_prev
        pg_new = self.P(g, self.d)           # d is free until the direction is made
        torch.sub(pg_new, pg, out=py)
        pg.copy_(pg_new)
        ys = torch.dot(y, s)
        ok = ys > 1e-10 * torch.dot(y, y).clamp_min(1e-30)
        slot = self.small.advance()
        self.S.index_copy_(0, slot, s.unsqueeze(0))
        self.Y.index_copy_(0, slot, y.unsqueeze(0))
        with _ieee_fp32(xf.device):
            sv = self.S @ self.V.t()          # [m, 2]: S·y, S·g
            yw = self.Y @ self.W.t()          # [m, 3]: Y·s, Y·P y, Y·P g
        self.small.add(sv[:, 0], yw[:, 0], yw[:, 1], ys, ok)
        top, bottom = self.small.coefficients(sv[:, 1], yw[:, 2])
        gamma = self.small.gamma
        d = torch.mul(pg, gamma, out=self.d)
        d.addmv_(self.S.t(), top.to(d.dtype))
        yb = torch.mv(self.Y.t(), bottom.to(d.dtype), out=py)
        return d.add_(self.P(yb, py).mul_(gamma)).neg_()


@contextlib.contextmanager
def _ieee_fp32(device: torch.device):
    """TF32 off for the history products on CUDA (its 10-bit mantissa would spoil sᵀy); restored."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


class _SmallAlgebra:
    """The m×m side of the compact form: Sᵀ Y and Yᵀ P Y kept per slot, and the solves with the
    triangle R of Sᵀ Y in the pairs' age order (a ring-buffer rotation, precomputed per newest slot).
    The newest slot, which slots hold a good pair, and γ live on the device and change in place."""

    def __init__(self, m: int, device: torch.device):
        # float64 on CUDA keeps TF32 out of these small solves; float32 elsewhere (MPS has no float64).
        self.m = m
        self.dtype = torch.float64 if device.type == "cuda" else torch.float32
        self.SY = torch.zeros((m, m), device=device, dtype=self.dtype)    # [i, j] = s_iᵀ y_j
        self.YPY = torch.zeros_like(self.SY)                               # [i, j] = y_iᵀ P y_j
        self.valid = torch.zeros(m, device=device, dtype=self.dtype)      # 1 where a slot holds a good pair
        self.gamma = torch.ones((), device=device)
        self.slot = torch.full((1,), m - 1, dtype=torch.long, device=device)   # the newest pair's slot
        ages = torch.arange(m, device=device)   # made on the device: no host copy, no sync
        self.order = (ages.view(-1, 1) + 1 + ages.view(1, -1)) % m   # [newest] -> slots, oldest first
        self.back = torch.argsort(self.order, dim=1)

    def advance(self) -> torch.Tensor:
        """The slot of the pair about to be stored (the oldest one's), as a [1] device tensor."""
        return self.slot.add_(1).remainder_(self.m)

    def add(self, s_dot_y, y_dot_s, y_dot_py, ys, ok) -> None:
        """The newest slot's pair: ``S·y``, ``Y·s`` and ``Y·P y`` (each [m]), ``sᵀy`` and whether the
        pair is good. A bad pair's row and column, and those of unused slots, are zeros."""
        j = self.slot
        self.valid.index_copy_(0, j, ok.to(self.dtype).view(1))
        mask = self.valid * ok
        self.SY.index_copy_(1, j, (s_dot_y.to(self.dtype) * mask).unsqueeze(1))
        self.SY.index_copy_(0, j, (y_dot_s.to(self.dtype) * mask).unsqueeze(0))
        ypy = y_dot_py.to(self.dtype) * mask
        self.YPY.index_copy_(1, j, ypy.unsqueeze(1))
        self.YPY.index_copy_(0, j, ypy.unsqueeze(0))
        # Initial inverse Hessian scale from the newest good pair (kept from the last good one otherwise).
        newest = y_dot_py.index_select(0, j).view(())
        torch.where(ok, ys / newest.clamp_min(1e-30), self.gamma, out=self.gamma)

    def coefficients(self, s_dot_g: torch.Tensor, y_dot_pg: torch.Tensor):
        """(top, bottom) per slot such that H·g = γ P g + S ᵀtop + γ P (Yᵀ bottom)."""
        idx, back = self.order.index_select(0, self.slot)[0], self.back.index_select(0, self.slot)[0]
        sy = self.SY.index_select(0, idx).index_select(1, idx)
        dg = torch.diagonal(sy)
        R = torch.triu(sy)
        R.diagonal().add_(dg == 0)              # unused slots: a 1 on R's diagonal keeps it invertible
        gamma = self.gamma.to(self.dtype)
        a = (s_dot_g.to(self.dtype) * self.valid).index_select(0, idx).unsqueeze(1)
        b = gamma * (y_dot_pg.to(self.dtype) * self.valid).index_select(0, idx).unsqueeze(1)
        r_a = torch.linalg.solve_triangular(R, a, upper=True)
        ypy = self.YPY.index_select(0, idx).index_select(1, idx)
        inner = dg.unsqueeze(1) * r_a + gamma * torch.mv(ypy, r_a[:, 0]).unsqueeze(1) - b
        top = torch.linalg.solve_triangular(R.t(), inner, upper=False)
        return top[back, 0], -r_a[back, 0]


def spectral_preconditioner(shape, cap: float = 64.0):
    """``v ↦ F⁻¹(p·F v)`` over the last two dims, ``p(f) = min(cap, f_max / f)``: symmetric, positive."""
    h, w = shape[-2:]
    # Made in numpy, whose sqrt is exact: torch's CPU sqrt is not, and its last bit changed from
    # one process to the next (measured here), so the same settings gave different images per run.
    fy = np.abs(np.fft.fftfreq(h)).reshape(-1, 1)
    fx = np.fft.rfftfreq(w).reshape(1, -1)
    f = np.sqrt(fy ** 2 + fx ** 2)
    p = torch.from_numpy(np.minimum(math.sqrt(0.5) / np.maximum(f, 1e-9), cap).astype(np.float32))
    cache = {}

    def apply(v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``P·v`` into ``out`` (fp32, same size); the spectrum goes to a kept buffer too."""
        key = (v.device, v.dtype)
        if key not in cache:
            cache[key] = p.to(v.device)
        x = v.view(shape).float()
        spec = cache.get(("spec", v.device))
        if spec is None:
            spec = cache[("spec", v.device)] = torch.fft.rfft2(x)
        else:
            torch.fft.rfft2(x, out=spec)
        spec.mul_(cache[key])
        torch.fft.irfft2(spec, s=(h, w), out=out.view(shape))
        return out
    return apply
