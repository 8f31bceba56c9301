"""Loss terms against direct, loop-based computations on small tensors."""
import pytest
import torch
import torch.nn.functional as F

from nst_core import losses


def test_gram_matches_direct_sum():
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 5)
    g = losses.gram(f)
    direct = torch.zeros(2, 3, 3)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                direct[b, i, j] = sum(f[b, i, y, x] * f[b, j, y, x] for y in range(4) for x in range(5)) / 20
    assert torch.allclose(g, direct, atol=1e-5)


def test_masked_gram_weights_positions():
    torch.manual_seed(1)
    f = torch.randn(1, 2, 3, 3)
    m = torch.zeros(3, 3)
    m[0, :] = 1.0
    m[1, 1] = 0.5
    g = losses.gram(f, m)
    num = torch.zeros(2, 2)
    for y in range(3):
        for x in range(3):
            num += m[y, x] * torch.outer(f[0, :, y, x], f[0, :, y, x])
    assert torch.allclose(g[0], num / m.sum(), atol=1e-5)
    # A mask of ones is the plain Gram.
    assert torch.allclose(losses.gram(f, torch.ones(3, 3)), losses.gram(f), atol=1e-6)


def tv_differences(x):
    """TV as its definition: mean squared difference of horizontal, plus of vertical neighbours
    (a direction without neighbours, one row or column, adds 0)."""
    dx, dy = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
    return (dx ** 2).sum() / max(dx.numel(), 1) + (dy ** 2).sum() / max(dy.numel(), 1)


def test_tv_closed_form_direct():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    # horizontal neighbours differ by 1, vertical by 4
    assert torch.allclose(losses.tv_closed_form(x), torch.tensor(1.0 + 16.0))
    assert losses.tv_closed_form(torch.ones(1, 3, 5, 5)) == 0


def test_tv_closed_form_is_the_differences_and_their_gradient():
    """The closed form (a Laplacian convolution) against the differences: in float64 equal to
    rounding; in float32 within the rounding bound of its arithmetic, elementwise for the
    gradient (each element a five-term sum) and for the value (a dot product of n terms)."""
    torch.manual_seed(7)
    for shape in [(1, 3, 9, 11), (2, 3, 1, 6), (1, 1, 7, 1), (1, 3, 16, 16)]:
        x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
        (g_ref,) = torch.autograd.grad(2.5 * tv_differences(x), x)
        value = losses.tv_closed_form(x, 2.5)
        (g,) = torch.autograd.grad(value, x)
        assert float(value.detach()) == pytest.approx(2.5 * float(tv_differences(x).detach()), rel=1e-12, abs=1e-15)
        assert torch.allclose(g, g_ref, rtol=1e-12, atol=1e-15)
    x = torch.rand(1, 3, 33, 40, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: losses.tv_closed_form(t, 1.7), (x[..., :6, :7].clone().requires_grad_(True),))
    x32 = x.float().requires_grad_(True)
    value = losses.tv_closed_form(x32, 2.5)
    (g32,) = torch.autograd.grad(value, x32)
    k = losses._laplacian(x, 2.5).abs()
    spread = F.conv2d(F.pad(x.abs(), (1, 1, 1, 1), mode="replicate"), k, groups=3)   # Σ|k·x| per element
    u = 2.0 ** -24
    exact_g = 2 * F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), losses._laplacian(x, 2.5), groups=3)
    assert ((g32.double() - exact_g).abs() <= 2 * 6 * u * 2 * spread + 1e-30).all()
    n = x.numel()
    bound = n * u * float((x.abs() * spread).sum()) + 6 * u * float((x.abs() * spread).sum())
    assert abs(float(value.detach()) - 2.5 * float(tv_differences(x))) <= bound


def test_tv_closed_form_of_a_periodic_image_is_the_periodic_tv():
    """Seamless images: the closed form with wrap-around against the periodic differences
    (each pixel against its right and lower neighbour, wrapping around; in float64)."""
    torch.manual_seed(8)
    for shape in [(1, 3, 8, 12), (1, 3, 2, 5), (2, 1, 1, 4)]:
        x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
        ref = 1.5 * ((x - x.roll(1, -1)).pow(2).mean() + (x - x.roll(1, -2)).pow(2).mean())
        (g_ref,) = torch.autograd.grad(ref, x)
        value = losses.tv_closed_form(x, 1.5, periodic=True)
        (g,) = torch.autograd.grad(value, x)
        assert float(value.detach()) == pytest.approx(float(ref.detach()), rel=1e-12, abs=1e-15)
        assert torch.allclose(g, g_ref, rtol=1e-12, atol=1e-15)


def test_resize_mask_area_average():
    m = torch.zeros(4, 4)
    m[:2, :2] = 1
    r = losses.resize_mask(m, (2, 2))
    assert torch.allclose(r, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
