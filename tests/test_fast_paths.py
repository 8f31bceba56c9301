"""The fast paths give the same objective and gradient as the plain paths.

- channels_last and the bf16 runtime model against fp32 NCHW (same values; gradients equal up to the
  reduced precision and max-pool tie-breaking).
- VGG's 2×2 pooling split into row bands (a parallel backward on the CPU) against torch's pooling.
- The L-BFGS two-loop with in-place updates against a textbook two-loop; its trust region.
- ``auto`` precision/memory format resolve to what the device supports.
"""
import pytest
import torch

import nst_core
from nst_core import losses, runtime, style_stats, transfer
from nst_core.job import Job
from nst_core.lbfgs import LBFGS


def _objective(model, content, style, memory_format=None):
    opts = nst_core.Options()
    job = Job(model, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], nst_core.LossWeights(),
              opts, memory_format, style_stats.statistic("gram"), None)
    return transfer.objective_at(job, content, 0)


def _loss_and_grad(obj, x):
    g, terms = obj.evaluate(x)
    return float(terms["total"]), terms, g


def test_channels_last_and_bf16_match_fp32(vgg, content96, style96):
    torch.manual_seed(2)
    x = (content96 + 0.1 * torch.randn_like(content96)).clamp(0, 1)
    ref = _loss_and_grad(_objective(vgg, content96, style96), x)
    cl = _loss_and_grad(_objective(vgg, content96, style96, memory_format=torch.channels_last), x)
    # What stylize runs for bf16: a copy of the model with bf16 weights, laid out channels_last.
    bf16 = runtime.runtime_model(vgg, torch.device("cpu"), nst_core.Options(precision="bf16", channels_last="on"))
    assert bf16.features[0].weight.dtype == torch.bfloat16
    bf = _loss_and_grad(_objective(bf16, content96, style96, torch.channels_last), x)
    assert cl[0] == pytest.approx(ref[0], rel=1e-4)
    assert bf[0] == pytest.approx(ref[0], rel=0.03)
    cos_cl = float((cl[2] * ref[2]).sum() / (cl[2].norm() * ref[2].norm()))
    cos_bf = float((bf[2] * ref[2]).sum() / (bf[2].norm() * ref[2].norm()))
    # Max-pool ties (ReLU zeros) may route a gradient to another position of the window: not exact.
    assert cos_cl > 0.99
    assert cos_bf > 0.97


def test_gram_layouts_agree():
    torch.manual_seed(3)
    f = torch.randn(1, 8, 6, 7)
    m = torch.rand(6, 7)
    for mask in (None, m):
        a = losses.gram(f, mask)
        b = losses.gram(f.contiguous(memory_format=torch.channels_last), mask)
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_banded_pooling_is_torchs_pooling_bit_for_bit(mode):
    """Pool2x2 splits a channels_last CPU image into row bands (seen by the pool as a batch) so its
    backward runs on every core; output, its layout and the gradient are torch's own, exactly, for
    even and odd sizes, a batch, both layouts and both precisions."""
    from nst_core.vgg import Pool2x2
    import torch.nn.functional as F
    ref = F.max_pool2d if mode == "max" else F.avg_pool2d
    torch.manual_seed(0)
    banded = 0
    for shape in [(1, 16, 96, 128), (2, 8, 48, 66), (1, 8, 34, 35), (1, 8, 33, 40), (1, 3, 68, 90)]:
        for dtype in (torch.float32, torch.bfloat16):
            for cl in (True, False):
                x = torch.relu(torch.randn(shape)).to(dtype)
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
                ya, yb = Pool2x2(mode)(a), ref(b, 2, 2)
                g = torch.randn(yb.shape).to(dtype)
                (ga,), (gb,) = torch.autograd.grad(ya, a, g), torch.autograd.grad(yb, b, g)
                what = (shape, dtype, cl)
                assert torch.equal(ya, yb) and ya.stride() == yb.stride(), what
                assert torch.equal(ga, gb) and ga.stride() == gb.stride(), what
                banded += Pool2x2.bands(a) > 1
    assert banded == 6     # 96, 48 and 68 rows in channels_last, both precisions: the split was used


def _textbook_direction(g, S, Y, P=None):
    """-H·g by the classic two-loop recursion with H0 = γP (P = I unless given; γ from the newest pair)."""
    P = P if P is not None else torch.eye(g.numel())
    q = g.clone()
    alphas = []
    for s, y in zip(reversed(S), reversed(Y)):
        a = torch.dot(s, q) / torch.dot(y, s)
        q = q - a * y
        alphas.append(a)
    r = (P @ q) * (torch.dot(S[-1], Y[-1]) / torch.dot(Y[-1], P @ Y[-1]))
    for (s, y), a in zip(zip(S, Y), reversed(alphas)):
        b = torch.dot(y, r) / torch.dot(y, s)
        r = r + s * (a - b)
    return -r


def test_lbfgs_two_loop_matches_textbook():
    """On a convex quadratic inside the box, our in-place two-loop gives the textbook step."""
    torch.manual_seed(4)
    n = 40
    A = torch.randn(n, n)
    A = A @ A.T / n + torch.eye(n)
    x = (0.5 + 0.01 * torch.randn(n)).view(1, 1, 5, 8)
    opt = LBFGS(x, history_size=4, lo=-1e9, hi=1e9, max_step_rms=0)   # no trust region: the bare recursion
    S, Y = [], []
    prev = None
    for k in range(8):
        xf = x.flatten().clone()
        g = A @ (xf - 0.3)
        if prev is not None:
            S.append(xf - prev[0])
            Y.append(g - prev[1])
            S, Y = S[-4:], Y[-4:]
        expected = _textbook_direction(g, S, Y) if S else None
        opt.step(g.view_as(x))
        if expected is not None:
            assert torch.allclose(x.flatten() - xf, expected, rtol=1e-4, atol=1e-7)
        prev = (xf, g)


def test_lbfgs_compact_form_with_a_preconditioner_matches_the_two_loop():
    """With the initial inverse Hessian γP (P symmetric positive definite, here a random one) the
    compact form gives the two-loop recursion's step, over a ring of pairs that wraps twice."""
    torch.manual_seed(5)
    n = 48
    A = torch.randn(n, n)
    A = A @ A.T / n + torch.eye(n)
    B = torch.randn(n, n)
    P = B @ B.T / n + 0.1 * torch.eye(n)
    x = (0.5 + 0.01 * torch.randn(n)).view(1, 1, 6, 8)
    opt = LBFGS(x, history_size=3, lo=-1e9, hi=1e9, max_step_rms=0,
                precondition=lambda v, out: out.copy_(P @ v))
    S, Y, prev = [], [], None
    for k in range(9):
        xf = x.flatten().clone()
        g = A @ (xf - 0.3)
        if prev is not None:
            S, Y = (S + [xf - prev[0]])[-3:], (Y + [g - prev[1]])[-3:]
        opt.step(g.view_as(x))
        if S:
            assert torch.allclose(x.flatten() - xf, _textbook_direction(g, S, Y, P), rtol=1e-4, atol=1e-6), k
        prev = (xf, g)


def _two_loop(g, pairs, gamma, P):
    """-H·g by the two-loop recursion over ``pairs`` (oldest first) with H0 = γP."""
    q, alphas = g.clone(), []
    for s, y in reversed(pairs):
        a = torch.dot(s, q) / torch.dot(y, s)
        q = q - a * y
        alphas.append(a)
    r = gamma * (P @ q)
    for (s, y), a in zip(pairs, reversed(alphas)):
        r = r + s * (a - torch.dot(y, r) / torch.dot(y, s))
    return -r


def test_lbfgs_skips_pairs_of_negative_curvature_like_the_two_loop_without_them():
    """On an indefinite quadratic some pairs have sᵀy <= 0: they keep their slot in the ring (the
    memory holds the last m pairs, good or not) but do nothing, and γ comes from the newest good
    pair. Each step is the two-loop recursion's over the good pairs among the last m."""
    torch.manual_seed(6)
    n, m = 48, 3
    q, _ = torch.linalg.qr(torch.randn(n, n))
    A = q @ torch.diag(torch.linspace(-0.3, 2.0, n)) @ q.T
    B = torch.randn(n, n)
    for P in (torch.eye(n), B @ B.T / n + 0.1 * torch.eye(n)):
        x = (0.5 + 0.1 * torch.randn(n)).view(1, 1, 6, 8)
        opt = LBFGS(x, history_size=m, lo=-1e9, hi=1e9, max_step_rms=0, precondition=lambda v, out: out.copy_(P @ v))
        ring, gamma, prev, bad = [], 1.0, None, 0
        for k in range(12):
            xf = x.flatten().clone()
            g = A @ (xf - 0.3)
            if prev is not None:
                s, y = xf - prev[0], g - prev[1]
                good = float(torch.dot(s, y)) > 1e-10 * float(torch.dot(y, y))
                bad += not good
                gamma = float(torch.dot(s, y) / torch.dot(y, P @ y)) if good else gamma
                ring = (ring + [(s, y, good)])[-m:]
            opt.step(g.view_as(x))
            if prev is not None:
                want = _two_loop(g, [(s, y) for s, y, ok in ring if ok], gamma, P)
                assert torch.allclose(x.flatten() - xf, want, rtol=1e-4, atol=1e-6), k
            prev = (xf, g)
        assert bad >= 2, "the test needs pairs of negative curvature"


def test_lbfgs_long_steps_are_shortened_along_the_same_direction():
    """The trust region: a step longer than max_step_rms (RMS per element) is cut to that length,
    not clipped per element; shorter steps are left alone."""
    torch.manual_seed(8)
    n = 64
    A = torch.diag(torch.logspace(-3, 0, n))   # badly conditioned: the second step overshoots
    x0 = (0.5 + 0.2 * torch.randn(n)).view(1, 1, 8, 8)
    steps = {}
    for cap in (0, 0.05):
        x = x0.clone()
        opt = LBFGS(x, history_size=4, lo=-1e9, hi=1e9, max_step_rms=cap)
        taken = []
        for _ in range(4):
            before = x.flatten().clone()
            opt.step((A @ (before - 0.5)).view_as(x))
            taken.append(x.flatten() - before)
        steps[cap] = taken
    free, capped = steps[0], steps[0.05]
    rms = [float(s.pow(2).mean().sqrt()) for s in free]
    assert max(rms) > 0.05, "the test needs an overshooting step"
    # The first two steps are the same direction with or without the cap; only the length differs.
    for f, c in zip(free[:2], capped[:2]):
        assert float(c.pow(2).mean().sqrt()) <= 0.05 + 1e-6
        assert torch.allclose(c, f * min(1.0, 0.05 / float(f.pow(2).mean().sqrt())), rtol=1e-4, atol=1e-7)


def test_auto_settings_resolve_per_device(vgg):
    cpu = torch.device("cpu")
    assert runtime.resolve_precision(cpu, "fp32") == "fp32"
    assert runtime.resolve_precision(cpu, "auto") == ("bf16" if runtime.cpu_has_fast_bf16() else "fp32")
    assert runtime.memory_format_for(cpu, "auto") is torch.channels_last
    assert runtime.memory_format_for(cpu, "off") is None
    assert runtime.memory_format_for(torch.device("mps"), "auto") is None
    assert runtime.runtime_model(vgg, cpu, nst_core.Options(precision="fp32", channels_last="off")) is vgg
    # fp32 channels_last: a copy whose weights are laid out so, with the same values
    cl = runtime.runtime_model(vgg, cpu, nst_core.Options(precision="fp32", channels_last="on"))
    w, w0 = cl.features[0].weight, vgg.features[0].weight
    assert cl is not vgg and w.dtype == torch.float32 and w.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(w, w0) and not w0.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(nst_core.StylizeError, match="precision"):
        runtime.runtime_model(vgg, cpu, nst_core.Options(precision="fp8"))


@pytest.mark.parametrize("host", [False, True])
def test_cuda_settings_leave_the_host_autotuner_alone_and_restore_every_flag(host):
    """A run on CUDA leaves cuDNN's autotuner as the host set it (ComfyUI: --fast autotune) unless
    the options say otherwise, and every flag it sets is put back afterwards. Only flags are
    touched, so this runs without a GPU."""
    from nst_core.runtime import device_settings
    flags = torch.backends.cudnn
    saved = (flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32)
    cuda = torch.device("cuda")
    try:
        flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32 = host, False, False
        with device_settings(cuda, nst_core.Options()):
            assert flags.benchmark is host
            assert torch.backends.cuda.matmul.allow_tf32 and flags.allow_tf32
        with device_settings(cuda, nst_core.Options(cudnn_benchmark=not host, tf32=False)):
            assert flags.benchmark is (not host)
        assert (flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32) == (host, False, False)
    finally:
        flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32 = saved
