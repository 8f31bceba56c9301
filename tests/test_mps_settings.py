"""What nst_core chooses for Apple's MPS device is valid there, checked on the CPU.

MPS has no float64, its bf16 convolutions are slow or missing on many macOS versions, and
channels_last gains nothing there; the settings resolved for an ``mps`` device must avoid all three.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import nst_core
from nst_core import runtime as transfer

MPS = torch.device("mps")


def test_auto_precision_on_mps_is_fp32():
    assert transfer.resolve_precision(MPS, "auto") == "fp32"


def test_auto_memory_format_on_mps_is_the_default_layout():
    assert transfer.memory_format_for(MPS, nst_core.Options().channels_last) is None


def test_default_options_on_mps_run_the_fp32_model_itself(vgg):
    """fp32 means no reduced-precision copy, hence no cast and no autocast of the weights."""
    assert transfer.runtime_model(vgg, MPS, nst_core.Options()) is vgg


class Float64Ops(TorchDispatchMode):
    """Records every op that produces a float64 tensor."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in outs):
            self.ops.add(str(func))
        return out


@pytest.mark.parametrize("color", ["none", "luminance"])
def test_a_run_with_the_default_settings_computes_nothing_in_float64(vgg, color):
    """The loop itself (losses, Gram matrices, L-BFGS, history) stays float32, as it must on MPS.
    (color linear/histogram fit their 3x3 statistics in float64 on purpose, on the CPU.)"""
    from testlib import sample_image

    content, style = sample_image("tubingen.jpg", 48), sample_image("starry_night.jpg", 48)
    opts = nst_core.Options(size=48, start_size=0, steps=3, color=color, precision="fp32")
    with Float64Ops() as seen:
        result = nst_core.stylize(vgg, nst_core.ContentTarget(content), [nst_core.StyleTarget(style)], opts=opts)
    assert result.image.dtype == torch.float32
    assert not seen.ops, f"float64 ops in the loop: {sorted(seen.ops)}"

