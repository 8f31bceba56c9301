"""Bad numbers sent through ComfyUI (the API takes NaN, which min/max checks never catch) fail
validation with a message naming the input; RGBA images are composited over white."""
from __future__ import annotations

import pytest
import torch

import harness
from nst_prompts import basic_prompt

NAN = float("nan")


def _with_loss(**weights):
    p = basic_prompt(save=False)
    p["15"] = {"class_type": "NeuralStyleLossSettings",
               "inputs": {"content_weight": 5.0, "style_weight": 100.0, "tv_weight": 0.001,
                          "temporal_weight": 200.0, **weights}}
    p["6"]["inputs"]["loss"] = ["15", 0]
    p["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    return p


@pytest.mark.parametrize("prompt, node, needle", [
    (_with_loss(style_weight=NAN), "15", "style weight is nan"),
    (_with_loss(content_weight=NAN), "15", "content weight is nan"),
    (_with_loss(tv_weight=-1.0), "15", "tv weight is -1"),
    (basic_prompt(size=16), "6", "size is 16; use 0 (the content's own size) or a value from 32 to 16384"),
    (basic_prompt(size=100000), "6", "size is 100000"),
    (basic_prompt(style_strength=NAN), "6", "style strength is nan"),
    (basic_prompt(tile_size=10), "11", "tile size is 10"),
    (basic_prompt(lr=0.0), "11", "lr is 0"),
    (basic_prompt(preview_interval=-1), "11", "preview interval is -1"),
    (basic_prompt(passes=0), "12", "passes is 0"),
    (basic_prompt(long_term=-1), "12", "long term is -1"),
    (basic_prompt(frame_steps=-3), "12", "frame steps is -3"),
])
def test_bad_numbers_fail_validation_naming_the_input(nst_pack, prompt, node, needle):
    with pytest.raises(harness.ComfyValidationError) as e:
        nst_pack.execute_prompt(prompt)
    assert needle in str(e.value), str(e.value)
    assert node in e.value.node_errors


def test_nan_style_weight_on_encode_style_fails_validation(nst_pack):
    p = basic_prompt()
    p["5"]["inputs"]["weight"] = NAN
    with pytest.raises(harness.ComfyValidationError) as e:
        nst_pack.execute_prompt(p)
    assert "weight is nan" in str(e.value) and "5" in e.value.node_errors


def test_rgba_image_composited_over_white(nst_pack):
    convert = nst_pack.pack_module.nodes.common
    rgba = torch.zeros(1, 4, 6, 4)                              # IMAGE [B, H, W, C], hidden RGB black
    rgba[:, :, :2] = torch.tensor([0.8, 0.2, 0.1, 1.0])         # opaque on the left
    rgba[:, :, 2:4, 3] = 0.5                                    # half-transparent; the right: transparent
    x = convert.image_to_core(rgba, "image")
    assert x.shape == (1, 3, 4, 6)
    assert torch.allclose(x[0, :, :, :2], torch.tensor([0.8, 0.2, 0.1]).view(3, 1, 1).expand(3, 4, 2))
    assert torch.allclose(x[0, :, :, 2:4], torch.full((3, 4, 2), 0.5))
    assert torch.allclose(x[0, :, :, 4:], torch.ones(3, 4, 2))
    with pytest.raises(ValueError, match="NaN"):
        convert.image_to_core(torch.full((1, 8, 8, 3), NAN), "image")


def test_damaged_weights_in_models_vgg_named_as_damage(nst_pack, comfy_layout):
    """Load VGG on a corrupt download: said to be damaged, not 'a pickle that carries code'."""
    import random

    path = comfy_layout.vgg_dir / "vgg19-broken.pth"
    path.write_bytes(random.Random(3).randbytes(5000))
    try:
        p = {"3": {"class_type": "NeuralStyleLoadVGG",
                   "inputs": {"weights": path.name, "pooling": "max", "convention": "auto"}},
             **{k: v for k, v in basic_prompt().items() if k != "3"}}
        with pytest.raises(harness.ComfyExecutionError) as e:
            nst_pack.execute_prompt(p)
        message = e.value.details["exception_message"]
        assert "corrupt or truncated" in message and "carries code" not in message, message
        assert e.value.details["node_id"] == "3"
    finally:
        path.unlink()
