"""A small L-BFGS for one tensor, written to stay off the host: no ``.item()`` in the loop.

Deviations from ``torch.optim.LBFGS`` (one line each):
- one gradient evaluation per iteration and a fixed step of 1 (no line search), as in neural-style;
- curvature pairs with ``sᵀy <= 0`` are neutralised with ``torch.where`` instead of a host-side test;
- the first step is scaled so the mean pixel change is one 8-bit grey level.
- the initial inverse Hessian is ``γ·P`` with ``P`` a 1/frequency spectral filter (capped at 64×),
  not ``γ·I``: early steps move low frequencies (layout, colour areas) as fast as pixel noise;
- the iterate is projected back into the box [lo, hi] after every step; ``s`` is the step actually
  taken, so the secant pairs stay consistent with the projection;
- a step whose RMS exceeds ``max_step_rms`` is shortened to it (a trust region in place of a line
  search: without it the second step, scaled by one pair's curvature, often overshoots far).
"""
from __future__ import annotations

from typing import List

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
        n = x.numel()
        self.S = torch.empty((self.m, n), device=x.device)
        self.Y = torch.empty_like(self.S)
        self.rho = torch.zeros(self.m, device=x.device)
        self.count = 0          # pairs stored (≤ m)
        self.newest = -1        # slot of the newest pair
        self.prev_x = torch.empty(n, device=x.device)
        self.prev_g = torch.empty(n, device=x.device)
        self.has_prev = False
        self.q, self.d = torch.empty(n, device=x.device), torch.empty(n, device=x.device)

    def _slots(self) -> List[int]:
        """Slots of the stored pairs, oldest first."""
        return [(self.newest - i) % self.m for i in range(self.count - 1, -1, -1)]

    def step(self, grad: torch.Tensor) -> None:
        """Update ``self.x`` in place, given the gradient at the current ``self.x``."""
        x = self.x.detach()
        g = grad.detach().flatten().float()
        xf = x.flatten().float()
        if self.has_prev:
            j = (self.newest + 1) % self.m
            s, y = self.S[j], self.Y[j]
            torch.sub(xf, self.prev_x, out=s)
            torch.sub(g, self.prev_g, out=y)
            ys = torch.dot(y, s)
            ok = ys > 1e-10 * torch.dot(y, y).clamp_min(1e-30)
            self.rho[j] = torch.where(ok, 1.0 / ys.clamp_min(1e-30), torch.zeros_like(ys))
            self.newest, self.count = j, min(self.count + 1, self.m)
            # Initial Hessian scale from the newest pair (kept from the last good one otherwise).
            gamma_new = ys / torch.dot(y, self.P(y, self.d)).clamp_min(1e-30)
            self.gamma = torch.where(ok, gamma_new, getattr(self, "gamma", gamma_new.new_ones(())))
        q = torch.neg(g, out=self.q)
        if self.count == 0:
            d = self.P(q, self.d)
            d.mul_(self.first_step / d.abs().mean().clamp_min(1e-30))
        else:
            slots = self._slots()
            alphas = []
            for j in reversed(slots):
                a = self.rho[j] * torch.dot(self.S[j], q)
                q.addcmul_(self.Y[j], a, value=-1.0)   # q -= a·y in one pass, no temporaries
                alphas.append(a)
            d = self.P(q, self.d).mul_(self.gamma)
            for j, a in zip(slots, reversed(alphas)):
                b = self.rho[j] * torch.dot(self.Y[j], d)
                d.addcmul_(self.S[j], a - b)
        if self.max_step_rms:
            # RMS(d) = ‖d‖/√n: shorten the step to max_step_rms where it is longer (no host sync).
            limit = self.max_step_rms * math.sqrt(d.numel())
            d.mul_((limit / torch.linalg.vector_norm(d).clamp_min(1e-30)).clamp(max=1.0))
        self.prev_x.copy_(xf)
        self.prev_g.copy_(g)     # a copy: the gradient's own buffer is freed now, not next step
        self.has_prev = True
        with torch.no_grad():
            self.x.add_(d.view_as(self.x).to(self.x.dtype)).clamp_(self.lo, self.hi)

    def reset(self) -> None:
        self.count, self.newest = 0, -1
        self.has_prev = False


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
