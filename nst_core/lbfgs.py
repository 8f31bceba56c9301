"""A small L-BFGS for one tensor, written to stay off the host: no ``.item()`` in the loop.

Deviations from ``torch.optim.LBFGS`` (one line each):
- one gradient evaluation per iteration and a fixed step of 1 (no line search), as in neural-style;
- curvature pairs with ``sᵀy <= 0`` are stored as zeros (which do nothing) instead of a host-side test;
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
        # history in two [m, n] ring buffers, the previous iterate and gradient, and the work
        # vectors. Nothing full-size is allocated in a step, and nothing made in one evaluation's
        # memory outlives it: on the CPU either would fragment the heap and raise the peak RSS.
        n, dev = x.numel(), x.device
        self.S = torch.zeros((self.m, n), device=dev)   # empty slots are zero pairs, which do nothing
        self.Y = torch.zeros_like(self.S)
        self.prev_x = torch.empty(n, device=dev)
        self.prev_g = torch.empty(n, device=dev)
        self.has_prev = False
        self.pg, self.py, self.d = (torch.empty(n, device=dev) for _ in range(3))
        self.small = _SmallAlgebra(self.m, dev)
        self.newest = -1        # slot of the newest pair; -1 until the first pair is stored

    def step(self, grad: torch.Tensor) -> None:
        """Update ``self.x`` in place, given the gradient at the current ``self.x``."""
        x = self.x.detach()
        g = grad.detach().flatten().float()
        xf = x.flatten().float()
        if self.has_prev:
            self._add_pair(xf, g)
        if self.newest < 0:
            d = self.P(g, self.d).neg_()
            d.mul_(self.first_step / d.abs().mean().clamp_min(1e-30))
        else:
            d = self._direction(g)
        if self.max_step_rms:
            # RMS(d) = ‖d‖/√n: shorten the step to max_step_rms where it is longer (no host sync).
            limit = self.max_step_rms * math.sqrt(d.numel())
            d.mul_((limit / torch.linalg.vector_norm(d).clamp_min(1e-30)).clamp(max=1.0))
        self.prev_x.copy_(xf)
        self.prev_g.copy_(g)     # a copy: the gradient's own buffer is freed now, not next step
        self.has_prev = True
        with torch.no_grad():
            self.x.add_(d.view_as(self.x).to(self.x.dtype)).clamp_(self.lo, self.hi)

    def _add_pair(self, xf: torch.Tensor, g: torch.Tensor) -> None:
        """Store (s, y) in the next slot; a pair with ``sᵀy <= 0`` is stored as zeros (no host test)."""
        j = (self.newest + 1) % self.m
        s, y = self.S[j], self.Y[j]
        torch.sub(xf, self.prev_x, out=s)
        torch.sub(g, self.prev_g, out=y)
        ys = torch.dot(y, s)
        ok = ys > 1e-10 * torch.dot(y, y).clamp_min(1e-30)
        s.mul_(ok)
        y.mul_(ok)
        py = self.P(y, self.py)
        self.small.add(j, self.S @ y, self.Y @ s, self.Y @ py, ok)
        self.newest = j

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """−H·g with H the L-BFGS inverse Hessian in its compact form (Byrd, Nocedal & Schnabel 1994):
        a few [m, n] products instead of the two-loop recursion's 4m small vector steps."""
        pg = self.P(g, self.pg)
        gamma = self.small.gamma
        top, bottom = self.small.coefficients(self.S @ g, self.Y @ pg, self.newest)
        d = torch.mul(pg, gamma, out=self.d)
        d.addmv_(self.S.t(), top.to(d.dtype))
        yb = torch.mv(self.Y.t(), bottom.to(d.dtype), out=self.py)
        return d.add_(self.P(yb, self.py).mul_(gamma)).neg_()


class _SmallAlgebra:
    """The m×m side of the compact form: Sᵀ Y and Yᵀ P Y kept per slot, and the solves with the
    triangle R of Sᵀ Y in the pairs' age order (a ring-buffer rotation, precomputed per newest slot)."""

    def __init__(self, m: int, device: torch.device):
        # float64 on CUDA keeps TF32 out of these small solves; float32 elsewhere (MPS has no float64).
        self.dtype = torch.float64 if device.type == "cuda" else torch.float32
        self.SY = torch.zeros((m, m), device=device, dtype=self.dtype)    # [i, j] = s_iᵀ y_j
        self.YPY = torch.zeros_like(self.SY)                               # [i, j] = y_iᵀ P y_j
        self.gamma = torch.ones((), device=device)
        ages = torch.arange(m, device=device)   # made on the device: no host copy, no sync
        self.order = (ages.view(-1, 1) + 1 + ages.view(1, -1)) % m   # [newest] -> slots, oldest first
        self.back = torch.argsort(self.order, dim=1)

    def add(self, j: int, s_dot_y: torch.Tensor, y_dot_s: torch.Tensor, y_dot_py: torch.Tensor, ok) -> None:
        """Slot ``j``'s new pair: ``S·y_j``, ``Y·s_j`` and ``Y·P y_j`` (each [m])."""
        self.SY[:, j] = s_dot_y.to(self.dtype)
        self.SY[j, :] = y_dot_s.to(self.dtype)
        self.YPY[:, j] = y_dot_py.to(self.dtype)
        self.YPY[j, :] = y_dot_py.to(self.dtype)
        # Initial inverse Hessian scale from the newest good pair (kept from the last good one otherwise).
        ys, ypy = self.SY[j, j], self.YPY[j, j]
        self.gamma = torch.where(ok, (ys / ypy.clamp_min(1e-30)).float(), self.gamma)

    def coefficients(self, s_dot_g: torch.Tensor, y_dot_pg: torch.Tensor, newest: int):
        """(top, bottom) per slot such that H·g = γ P g + S ᵀtop + γ P (Yᵀ bottom)."""
        idx, back = self.order[newest], self.back[newest]
        sy = self.SY[idx][:, idx]
        dg = torch.diagonal(sy)
        empty = (dg == 0).to(self.dtype)            # zero pairs: a 1 on R's diagonal keeps it invertible
        R = torch.triu(sy) + torch.diag(empty)
        gamma = self.gamma.to(self.dtype)
        a = s_dot_g.to(self.dtype)[idx].unsqueeze(1)
        b = gamma * y_dot_pg.to(self.dtype)[idx].unsqueeze(1)
        r_a = torch.linalg.solve_triangular(R, a, upper=True)
        inner = dg.unsqueeze(1) * r_a + gamma * torch.mv(self.YPY[idx][:, idx], r_a[:, 0]).unsqueeze(1) - b
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
