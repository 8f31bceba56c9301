"""Style statistics against closed forms, and their moment gradients against autograd."""
import pytest
import torch

from nst_core import style_stats as S


def _moments(mean, cov):
    """Expectations of a distribution with this mean and covariance."""
    return {"f": mean, "f2": torch.diagonal(cov) + mean ** 2, "ffT": cov + torch.outer(mean, mean)}


def _distance(stat, out, target):
    return float(stat.distance(stat.stat(out), stat.prepare(stat.stat(target))))


@pytest.mark.parametrize("name", ["gram", "mean_std", "w2"])
def test_identical_statistics_are_at_distance_zero(name):
    torch.manual_seed(0)
    a = torch.randn(5, 5)
    e = _moments(torch.randn(5), a @ a.t() + 0.1 * torch.eye(5))
    assert _distance(S.statistic(name), e, e) == pytest.approx(0, abs=1e-6)


def test_w2_of_two_gaussians_is_the_closed_form():
    """W2² between N(μ1, Σ1) and N(μ2, Σ2) with commuting (diagonal) covariances:
    ‖μ1 − μ2‖² + Σ (√a − √b)²; the statistic divides it by ‖μ2‖² + tr Σ2."""
    mu1, mu2 = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 2.0])
    a, b = torch.tensor([4.0, 1.0, 9.0]), torch.tensor([1.0, 4.0, 0.25])
    closed = float((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    norm = float(mu2.pow(2).sum() + b.sum())
    got = _distance(S.W2(), _moments(mu1, torch.diag(a)), _moments(mu2, torch.diag(b)))
    assert got == pytest.approx(closed / norm, rel=1e-4)


def test_w2_with_a_rotated_covariance():
    """Same Gaussians seen in a rotated basis: the distance does not change (non-commuting case)."""
    torch.manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(3, 3))
    mu1, mu2 = torch.randn(3), torch.randn(3)
    a, b = torch.diag(torch.tensor([4.0, 1.0, 9.0])), q @ torch.diag(torch.tensor([1.0, 4.0, 0.25])) @ q.t()
    s1 = _distance(S.W2(), _moments(mu1, a), _moments(mu2, b))
    s2 = _distance(S.W2(), _moments(q.t() @ mu1, q.t() @ a @ q), _moments(q.t() @ mu2, q.t() @ b @ q))
    assert s1 == pytest.approx(s2, rel=1e-4)
    # and the value is the textbook formula with matrix square roots
    def sqrtm(m):
        v, u = torch.linalg.eigh(m.double())
        return (u * v.clamp_min(0).sqrt()) @ u.t()
    rb = sqrtm(b)
    w2 = (mu1 - mu2).pow(2).sum() + a.trace() + b.trace() - 2 * sqrtm(rb @ a.double() @ rb).trace()
    assert s1 == pytest.approx(float(w2) / float(mu2.pow(2).sum() + b.trace()), rel=1e-4)


def test_mean_std_closed_form():
    mu1, mu2 = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.0])
    v1, v2 = torch.tensor([4.0, 1.0]), torch.tensor([1.0, 1.0])
    got = _distance(S.MeanStd(), _moments(mu1, torch.diag(v1)), _moments(mu2, torch.diag(v2)))
    want = ((mu1 - mu2).pow(2).mean() + (v1.sqrt() - v2.sqrt()).pow(2).mean()) / (mu2.pow(2).mean() + v2.mean())
    assert got == pytest.approx(float(want), rel=1e-4)


def test_sliced_w_of_a_shifted_copy():
    """Identical sets are at 0; a set shifted by δ along every channel is at mean((δ·Σd)²)/mean(T²)."""
    torch.manual_seed(1)
    f = torch.randn(1, 4, 8, 8)
    sw = S.SlicedW()
    target = sw.projections(f, None).sort(0).values.t().contiguous()
    loss, _ = sw.loss_and_gradient(f, None, target)
    assert float(loss) == pytest.approx(0, abs=1e-10)
    loss, _ = sw.loss_and_gradient(f + 0.5, None, target)
    shift = 0.5 * sw.directions(4, f.device).sum(0)              # each direction's projection moves by δ·Σd
    assert float(loss) == pytest.approx(float(shift.pow(2).mean() / target.pow(2).mean()), rel=1e-4)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
def test_moment_gradient_equals_autograd(layout, masked, symmetric):
    """add_moment_gradient gives ∂L/∂F for a loss of the moment sums, as autograd does; a symmetric
    gradient for Σw f fᵀ may come as ``Symmetric`` (its factor folded into the product)."""
    torch.manual_seed(2)
    f = torch.randn(1, 6, 5, 7).contiguous(memory_format=layout)
    w = torch.rand(35) if masked else None
    coef = {"f": torch.randn(6), "f2": torch.randn(6), "ffT": torch.randn(6, 6)}
    if symmetric:
        coef["ffT"] = coef["ffT"] + coef["ffT"].t()

    def loss_of(sums):
        return sum((coef[k] * sums[k]).sum() for k in coef)
    fr = f.detach().clone().requires_grad_(True)
    m = fr.permute(0, 2, 3, 1).reshape(35, 6)
    ww = torch.ones(35) if w is None else w
    sums = {"f": (ww[:, None] * m).sum(0), "f2": (ww[:, None] * m * m).sum(0), "ffT": (ww[:, None] * m).t() @ m}
    (want,) = torch.autograd.grad(loss_of(sums), fr)
    got = torch.zeros_like(f)
    S.add_moment_gradient(got, f, w, dict(coef, ffT=S.Symmetric(2 * coef["ffT"], 0.5)) if symmetric else coef)
    assert torch.allclose(got, want, atol=1e-4)
    s = S.moment_sums(f, w, ("f", "f2", "ffT"))
    for k in coef:
        assert torch.allclose(s[k], sums[k].detach(), atol=1e-4)


def test_sliced_gradient_equals_autograd_through_sort():
    torch.manual_seed(4)
    f = torch.randn(1, 3, 6, 6)
    sw = S.SlicedW()
    target = sw.projections(torch.randn(1, 3, 5, 5) * 2 + 1, None).sort(0).values.t().contiguous()
    loss, got = sw.loss_and_gradient(f, None, target)
    fr = f.clone().requires_grad_(True)
    p = fr.permute(0, 2, 3, 1).reshape(36, 3) @ sw.directions(3, f.device)
    t = S._resample(target, 36).t()
    ref = (p.sort(0).values - t).pow(2).mean() / target.pow(2).mean()
    (want,) = torch.autograd.grad(ref, fr)
    assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-5)
    assert torch.allclose(got, want, atol=1e-6)


def test_unknown_statistic_is_refused_with_the_choices():
    with pytest.raises(S.StyleStatError, match="gram, mean_std, w2, sliced_w, gram_deep_ms"):
        S.statistic("gramm")


def test_deep_mean_std_is_gram_shallow_and_mean_std_deep():
    torch.manual_seed(5)
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    out, target = _moments(torch.randn(4), a @ a.t() + 0.1 * torch.eye(4)), _moments(torch.rand(4), b @ b.t())
    stat = S.statistic("gram_deep_ms")
    for layer, sub in (("relu2_1", S.Gram()), ("relu5_1", S.MeanStd())):
        got = float(stat.distance(stat.stat(out), stat.prepare_layer(layer, target)))
        assert got == pytest.approx(_distance(sub, out, target), rel=1e-6)
        assert float(stat.distance(stat.stat(target), stat.prepare_layer(layer, target))) == pytest.approx(0, abs=1e-5)
