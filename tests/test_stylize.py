"""The optimisation loop with the real offline VGG19 on small crops of the shared images."""
import pytest
import torch

import nst_core
from testlib import scorer


def objective(vgg, content, style):
    """Our objective at the content's size, to score any candidate image."""
    return scorer(vgg, content, style)


def run(vgg, content, style, **kw):
    opts = nst_core.Options(size=max(content.shape[-2:]), start_size=0, **kw)
    return nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts)


@pytest.mark.parametrize("optimizer,steps", [("lbfgs", 30), ("adam", 150)])
def test_optimizer_reduces_loss_and_transfers_style(vgg, content128, style128, optimizer, steps):
    content96, style96 = content128, style128
    r = run(vgg, content96, style96, optimizer=optimizer, steps=steps, init="noise")
    total = r.history["total"]
    assert len(total) == steps
    assert total[0] / total[-1] >= 10, f"total loss only fell {total[0] / total[-1]:.1f}x"
    score = objective(vgg, content96, style96)
    out, as_content, as_style = score(r.image), score(content96), score(style96)
    assert out["style"] < 0.25 * as_content["style"], (out, as_content)
    assert out["content"] < as_style["content"], (out, as_style)
    assert r.image.min() >= 0 and r.image.max() <= 1
    assert r.image.shape == content96.shape


def test_same_seed_same_output_different_seed_differs(vgg, content96, style96):
    c = content96[..., :48, :64]
    a = run(vgg, c, style96, steps=5, init="noise", seed=7).image
    b = run(vgg, c, style96, steps=5, init="noise", seed=7).image
    d = run(vgg, c, style96, steps=5, init="noise", seed=8).image
    assert torch.equal(a, b)
    assert (a - d).abs().mean() > 1e-3


def test_callback_sees_every_iteration_and_can_stop(vgg, content96, style96):
    seen = []

    def cb(info):
        seen.append((info.iteration, info.total, set(info.losses)))
        assert info.image().shape[-2:] == info.size
        return info.iteration == 4
    with pytest.raises(nst_core.Interrupted) as e:
        run(vgg, content96[..., :48, :48], style96, steps=10, callback=None) if False else nst_core.stylize(
            vgg, nst_core.ContentTarget(content96[..., :48, :48]), [nst_core.StyleTarget(style96)],
            opts=nst_core.Options(size=48, start_size=0, steps=10), callback=cb)
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    assert seen[0][1] == 10 and {"content", "style", "tv", "total"} <= seen[0][2]
    assert e.value.image.shape[-2:] == (48, 48)


def test_interrupt_hook_runs_inside_the_step(vgg, content96, style96):
    calls = []

    class Cancelled(Exception):
        pass

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise Cancelled()
    with pytest.raises(Cancelled):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96[..., :48, :48]), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=48, start_size=0, steps=10), interrupt=interrupt)
    assert len(calls) == 3


def test_multiscale_plan_and_run(vgg, content96, style96):
    opts = nst_core.Options(size=128, start_size=64, steps=8)
    plan = nst_core.plan_scales((96, 128), opts)
    assert [max(hw) for hw, _ in plan] == [64, 91, 128]
    assert [n for _, n in plan] == [20, 20, 20]  # min_scale_steps floor
    r = nst_core.stylize(vgg, nst_core.ContentTarget(content96), [nst_core.StyleTarget(style96)],
                         opts=nst_core.Options(size=128, start_size=64, scale_steps=[6, 4, 2]))
    assert r.image.shape[-2:] == (96, 128)
    assert r.scale_starts == [0, 6, 10] and len(r.history["total"]) == 12


@pytest.mark.parametrize("bad,match", [
    (dict(content_layers={"relu9_1": 1}), "unknown layer name"),
    (dict(size=8), r"size is 8; use 0 \(the content.s own size\) or a value from 32"),
    (dict(optimizer="sgd"), "unknown optimizer"),
])
def test_bad_input_clear_messages(vgg, content96, style96, bad, match):
    layers = bad.pop("content_layers", None)
    ct = nst_core.ContentTarget(content96, layers=layers) if layers else nst_core.ContentTarget(content96)
    with pytest.raises(ValueError, match=match):
        nst_core.stylize(vgg, ct, [nst_core.StyleTarget(style96)], opts=nst_core.Options(start_size=0, **bad))


def test_empty_batch_and_no_style(vgg, content96, style96):
    with pytest.raises(nst_core.StylizeError, match="batch is empty"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96[:0]), [nst_core.StyleTarget(style96)])
    with pytest.raises(nst_core.StylizeError, match="no style"):
        nst_core.stylize(vgg, nst_core.ContentTarget(content96), [])
