"""The photorealism pieces: the matting Laplacian, its loss term, the guided filter, the mode's settings."""
from __future__ import annotations

import pytest
import torch
from testlib import sample_image

import nst_core
from nst_core import cli, photoreal
from nst_core.photoreal import PhotorealError, laplacian_term, matting_laplacian, smooth


def dense_laplacian(image: torch.Tensor, eps: float) -> torch.Tensor:
    """Levin et al.'s matting Laplacian written out window by window (float64), as the reference."""
    img = image[0].double()
    h, w = img.shape[-2:]
    lap = torch.zeros(h * w, h * w, dtype=torch.float64)
    for ky in range(h - 2):
        for kx in range(w - 2):
            idx = torch.tensor([(ky + a) * w + kx + b for a in range(3) for b in range(3)])
            colours = img[:, ky:ky + 3, kx:kx + 3].reshape(3, 9).T          # 9 pixels × RGB
            d = colours - colours.mean(0)
            inv = torch.linalg.inv(d.T @ d / 9 + eps / 9 * torch.eye(3, dtype=torch.float64))
            lap[idx[:, None], idx[None, :]] += torch.eye(9, dtype=torch.float64) - (1 + d @ inv @ d.T) / 9
    return lap


@pytest.fixture(scope="module")
def tiny():
    """A 6×5 crop of the photo (real colour structure) and a 6×5 random image."""
    photo = sample_image("tubingen.jpg", 64)[..., 20:25, 30:36].contiguous()
    noise = torch.rand((1, 3, 5, 6), generator=torch.Generator().manual_seed(0))
    return photo, noise


@pytest.mark.parametrize("eps", [1e-7, 1e-3])
@pytest.mark.parametrize("which", [0, 1], ids=["photo", "noise"])
def test_laplacian_matches_the_dense_reference(tiny, which, eps):
    image = tiny[which]
    ref = dense_laplacian(image, eps)
    lap = matting_laplacian(image, eps)
    ours = lap.to_sparse().to_dense().double()
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()
    v = torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(1))
    expect = (ref @ v.reshape(3, -1).double().T).T.reshape(3, 5, 6)
    assert torch.allclose(lap.matvec(v).double(), expect, atol=1e-5)


def test_laplacian_is_symmetric_psd_and_constants_are_its_null_space(tiny):
    lap = matting_laplacian(tiny[0])
    dense = lap.to_sparse().to_dense().double()
    assert torch.equal(dense, dense.T)
    eig = torch.linalg.eigvalsh(dense)
    assert eig.min() >= -1e-6 * eig.max()
    assert eig.max() > 1.0                       # not trivially zero
    assert dense.sum(1).abs().max() < 1e-5       # rows sum to zero: M·1 = 0
    ones = torch.ones(3, 5, 6)
    assert lap.matvec(ones).abs().max() < 1e-5


def test_nonzeros_are_the_5x5_neighbourhoods():
    img = sample_image("tubingen.jpg", 40)
    lap = matting_laplacian(img)
    h, w = lap.shape
    # Pixel pairs less than 3 px apart in both directions (pairs that share a 3×3 window).
    expect = sum((h - abs(dy)) * (w - abs(dx)) for dy, dx in photoreal.OFFSETS)
    assert lap.nnz() == expect


def test_affine_recolourings_of_the_content_cost_almost_nothing():
    content = sample_image("tubingen.jpg", 64)
    term = laplacian_term(content)
    mix = torch.tensor([[0.6, 0.3, 0.1], [-0.2, 0.9, 0.1], [0.1, -0.3, 0.8]])
    recoloured = torch.einsum("ij,bjhw->bihw", mix, content) + torch.tensor([0.1, -0.05, 0.2]).view(1, 3, 1, 1)
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    squared = content ** 2                      # not affine in the content's colours
    base = float(term(noise))
    # The exact loss of an affine image is at most ε·|a|² per window, about 1e-7 here.
    assert float(term(content)) < 1e-5 * base
    assert float(term(recoloured)) < 1e-5 * base
    assert float(term(squared)) > 100 * float(term(recoloured))


def test_gradient_matches_autograd_and_finite_differences(tiny):
    image = tiny[0]
    ref = dense_laplacian(image, photoreal.EPS)
    term = laplacian_term(image)
    x = torch.rand((1, 3, 5, 6), generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    loss = term(x)
    (grad,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_(True)
    v = x64[0].reshape(3, -1)
    ref_loss = torch.einsum("ci,ij,cj->", v, ref, v) / 30
    (ref_grad,) = torch.autograd.grad(ref_loss, x64)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert abs(float(loss.detach()) - float(ref_loss.detach())) <= 1e-5 * float(ref_loss.detach())
    assert torch.allclose(grad.double(), ref_grad, rtol=1e-4, atol=1e-6)
    direction = torch.randn((1, 3, 5, 6), generator=torch.Generator().manual_seed(3))
    h = 1e-2   # the loss is quadratic: the central difference is exact up to rounding
    with torch.no_grad():
        fd = (term(x + h * direction) - term(x - h * direction)) / (2 * h)
    assert abs(float(fd) - float((grad * direction).sum())) <= 1e-3 * abs(float(fd))


def test_term_is_a_mean_over_pixels():
    """Divided by the pixel count: per-pixel noise costs the same at two sizes (a sum would grow 5×)."""
    content = sample_image("tubingen.jpg", 128)
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    small = nst_core.resize(content, (48, 64))
    big_val = float(laplacian_term(content)(noise))
    small_val = float(laplacian_term(small)(noise[..., :48, :64]))
    assert 0.5 < big_val / small_val < 2.0


def test_bad_shapes_get_clear_messages():
    with pytest.raises(PhotorealError, match="at least 3×3"):
        matting_laplacian(torch.rand(1, 3, 2, 8))
    with pytest.raises(PhotorealError, match="RGB"):
        matting_laplacian(torch.rand(1, 1, 8, 8))
    term = laplacian_term(torch.rand(1, 3, 8, 8))
    with pytest.raises(PhotorealError, match="at this scale"):
        term(torch.rand(1, 3, 8, 9))
    with pytest.raises(PhotorealError, match="radius"):
        smooth(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), -1, 1e-4)


def test_stylize_with_the_term_lowers_it(vgg):
    content = sample_image("tubingen.jpg", 48)
    style = sample_image("golden_gate.jpg", 48)
    opts = nst_core.Options(size=48, start_size=48, steps=8)
    term = laplacian_term(content)
    values = {}
    for w in (0.0, 1e4):
        res = nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)],
                               nst_core.LossWeights(photoreal=w), opts)
        assert torch.isfinite(res.image).all()
        assert ("photoreal" in res.history) == (w > 0)
        values[w] = float(term(res.image))
    assert values[1e4] < 0.5 * values[0.0]


# ---------------------------------------------------------------------------------------------
# The guided filter

def guided_filter_reference(p: torch.Tensor, guide: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s colour guided filter, window by window (float64), windows clipped at the borders."""
    p, g = p[0].double(), guide[0].double()
    h, w = p.shape[-2:]
    a_sum = torch.zeros(3, 3, h, w, dtype=torch.float64)
    b_sum = torch.zeros(3, h, w, dtype=torch.float64)
    count = torch.zeros(h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
            gi = g[:, ys, xs].reshape(3, -1).T
            pi = p[:, ys, xs].reshape(3, -1).T
            gc, pc = gi - gi.mean(0), pi - pi.mean(0)
            cov = gc.T @ gc / len(gi) + eps * torch.eye(3, dtype=torch.float64)
            a = torch.linalg.solve(cov, gc.T @ pc / len(gi))          # 3 (guide) × 3 (output)
            b = pi.mean(0) - gi.mean(0) @ a
            # The window centred at (y, x) covers the same clipped box as the one to average over.
            a_sum[:, :, ys, xs] += a[:, :, None, None]
            b_sum[:, ys, xs] += b[:, None, None]
            count[ys, xs] += 1
    q = torch.einsum("xzhw,xhw->zhw", a_sum / count, g) + b_sum / count
    return q.clamp(0, 1)[None]


def test_guided_filter_matches_the_reference():
    guide = sample_image("tubingen.jpg", 64)[..., 10:19, 20:31].contiguous()
    p = torch.rand(guide.shape, generator=torch.Generator().manual_seed(0))
    for r, eps in [(1, 1e-3), (2, 1e-2)]:
        ours = smooth(p, guide, r, eps)
        ref = guided_filter_reference(p, guide, r, eps)
        assert (ours.double() - ref).abs().max() < 1e-4


def test_guided_filter_removes_texture_and_keeps_the_guides_edges():
    guide = sample_image("tubingen.jpg", 128)
    noise = 0.08 * torch.randn(guide.shape, generator=torch.Generator().manual_seed(0))
    noisy = (guide + noise).clamp(0, 1)
    out = smooth(noisy, guide, 2, 1e-4)
    assert (out - guide).pow(2).mean() < 0.25 * (noisy - guide).pow(2).mean()
    # Edges: the mean gradient magnitude of the photo is kept (a box blur would lose much of it).
    def grad(img):
        return (img[..., :, 1:] - img[..., :, :-1]).abs().mean() + (img[..., 1:, :] - img[..., :-1, :]).abs().mean()
    assert grad(out) > 0.8 * grad(guide)
    blurred = torch.nn.functional.avg_pool2d(guide, 5, 1, 2, count_include_pad=False)
    assert grad(blurred) < 0.8 * grad(guide)


def test_guided_filter_resizes_the_guide_and_radius_zero_is_off():
    out = torch.rand(1, 3, 24, 32)
    guide = torch.rand(1, 3, 48, 64)
    assert smooth(out, guide, 2, 1e-3).shape == out.shape
    assert smooth(out, guide, 0, 1e-3) is out


# ---------------------------------------------------------------------------------------------
# The mode

def test_photorealistic_flag_sets_the_settings_and_explicit_flags_win():
    base = ["c.jpg", "s.jpg", "-o", "out.png"]
    s = photoreal.photorealistic_settings()
    plain = cli.parse_args(base)
    assert plain.photoreal_weight == 0 and plain.smooth_radius == 0
    args = cli.parse_args(base + ["--photorealistic"])
    assert args.photoreal_weight == s.photoreal > 0
    assert args.content_weight == s.content and args.smooth_radius == s.smooth_radius > 0
    assert args.init == "content" and args.color == "none"
    assert "relu5_1" not in args.style_layers and args.style_layers.startswith("relu1_1")
    args = cli.parse_args(base + ["--photorealistic", "--content-weight", "3", "--smooth-radius", "0",
                                  "--style-layers", "relu2_1"])
    assert args.content_weight == 3 and args.smooth_radius == 0 and args.style_layers == "relu2_1"
    assert args.photoreal_weight == s.photoreal


def test_cli_photorealistic_run(tmp_path):
    from testlib import IMAGES
    out = tmp_path / "out.png"
    rc = cli.main([str(IMAGES / "tubingen.jpg"), str(IMAGES / "golden_gate.jpg"), "-o", str(out),
                   "--photorealistic", "-s", "48", "--start-size", "0", "--steps", "3", "-q"])
    assert rc == 0 and out.is_file()
    assert nst_core.load_image(out).shape[-2:] == (36, 48)
    rc = cli.main([str(IMAGES / "tubingen.jpg"), str(IMAGES / "golden_gate.jpg"), "-o", str(tmp_path / "x.png"),
                   "--smooth-radius", "-1", "-q"])
    assert rc == 2 and not (tmp_path / "x.png").exists()
