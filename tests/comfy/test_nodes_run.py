"""The nodes executed by ComfyUI's own validator and executor (in-process), on real images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import harness
from nst_prompts import basic_prompt, fit, sample_array, to_array


def test_optimize_gives_a_stylised_image_progress_previews_and_a_loss_plot(nst_pack):
    res = nst_pack.execute_prompt(basic_prompt(steps=6, size=64, preview_interval=2))
    (img,) = res.images("9")
    assert img.size == fit((512, 384), 64) == (64, 48)
    out = to_array(img)
    content = sample_array("tubingen.jpg", img.size)
    assert np.abs(out - content).mean() > 0.02, "the output is (nearly) the content: nothing was optimised"

    # Progress from the Optimize node (paced, see test_progress_reporting.py): rising, ending at the total.
    prog = [p for p in res.progress if p["node"] == "6"]
    values = [p["value"] for p in prog]
    assert values == sorted(set(values)) and values[0] == 1 and values[-1] == prog[-1]["max"] == 6
    # Previews every 2 iterations (and at the end), as JPEG of the current image.
    assert len(res.previews) == 3
    fmt, image, max_size = res.previews[0].image_format, res.previews[0].image, res.previews[0].max_size
    assert fmt == "JPEG" and max_size == 64 and image.size == (64, 48)  # shown at its own size
    assert res.previews[0].metadata["node_id"] == "6"

    # The loss plot: an RGB image with coloured curves on white.
    (plot,) = res.images("10")
    arr = to_array(plot)
    assert plot.size == (640, 400)
    red = (arr[..., 0] > 0.7) & (arr[..., 1] < 0.3) & (arr[..., 2] < 0.3)  # the style curve
    assert red.sum() > 50

    # The raw outputs: IMAGE [B, H, W, 3] float in 0..1 on the intermediate device (CPU).
    image = res.node_outputs("6")[0][0]
    assert image.shape == (1, 48, 64, 3) and image.dtype == torch.float32
    assert image.device.type == "cpu" and 0 <= float(image.min()) and float(image.max()) <= 1
    # The cached VGG is back on the CPU, with no gradient bookkeeping left behind.
    vgg = res.node_outputs("3")[0][0]
    assert all(p.device.type == "cpu" and p.grad is None for p in vgg.parameters())


def test_preview_interval_zero_sends_progress_without_previews(nst_pack):
    res = nst_pack.execute_prompt(basic_prompt(steps=3, size=48, preview_interval=0, save=False)
                                  | {"9": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}})
    values = [p["value"] for p in res.progress if p["node"] == "6"]
    assert values == sorted(set(values)) and values[0] == 1 and values[-1] == 3
    assert res.previews == []


def test_batch_of_frames_blend_masks_loss_settings_and_init_image(nst_pack):
    """Two content frames (stock RepeatImageBatch), a content mask, two chained styles (one masked),
    loss settings, colour preservation and an init image, all through ComfyUI."""
    p = basic_prompt(steps=8, size=48, color="luminance", init="image", save=False, frame_steps=5)
    p["21"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    p["4"]["inputs"]["image"] = ["21", 0]
    p["4"]["inputs"]["layers"] = "relu4_2:1, relu3_1:0.5"
    p["22"] = {"class_type": "NeuralStyleSampleImage", "inputs": {"sample": "the_scream.jpg"}}
    p["13"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 48}}
    p["4"]["inputs"]["mask"] = ["13", 0]  # content term everywhere: exercises the content-mask path
    p["14"] = {"class_type": "NeuralStyleEncodeStyle",
               "inputs": {"image": ["22", 0], "layers": "relu2_1,relu3_1", "weight": 2.0, "scale": 0.5,
                          "mask": ["13", 0], "previous": ["5", 0]}}
    p["15"] = {"class_type": "NeuralStyleLossSettings",
               "inputs": {"content_weight": 2.0, "style_weight": 300.0, "tv_weight": 0.01, "temporal_weight": 10.0}}
    p["6"]["inputs"].update(style=["14", 0], loss=["15", 0], init_image=["1", 0])
    p["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    res = nst_pack.execute_prompt(p)
    image = res.node_outputs("6")[0][0]
    assert image.shape == (2, 36, 48, 3)
    content = torch.from_numpy(sample_array("tubingen.jpg", (48, 36)))
    assert (image[0] - content).abs().mean() > 0.02
    assert (image[1] - content).abs().mean() > 0.02
    prog = [q for q in res.progress if q["node"] == "6"]
    # Progress rises through both frames to the run's total: 8 for the first frame (one scale),
    # frame_steps = 5 for the second (warm-started from the first).
    values = [q["value"] for q in prog]
    assert values == sorted(set(values)) and values[-1] == prog[-1]["max"]
    assert prog[-1]["max"] == 8 + 5


def test_color_match_node_takes_the_reference_colours(nst_pack):
    p = {
        "1": {"class_type": "NeuralStyleSampleImage", "inputs": {"sample": "the_scream.jpg"}},
        "2": {"class_type": "NeuralStyleSampleImage", "inputs": {"sample": "golden_gate.jpg"}},
        "3": {"class_type": "NeuralStyleColorMatch", "inputs": {"image": ["1", 0], "reference": ["2", 0],
                                                                 "method": "linear"}},
        "4": {"class_type": "NeuralStyleColorMatch", "inputs": {"image": ["1", 0], "reference": ["2", 0],
                                                                 "method": "histogram"}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    res = nst_pack.execute_prompt(p)
    src = sample_array("the_scream.jpg").reshape(-1, 3)
    ref = sample_array("golden_gate.jpg").reshape(-1, 3)
    for node in ("3", "4"):
        out = res.node_outputs(node)[0][0]
        assert out.shape == (1, 512, 402, 3)
        mean = out.reshape(-1, 3).mean(0).numpy()
        assert np.abs(mean - ref.mean(0)).max() < 0.02 < np.abs(src.mean(0) - ref.mean(0)).max()


@pytest.mark.parametrize("layers, needle", [("relu4_2, relu9_9", "relu9_9"), ("relu4_2:abc", "bad weight"),
                                            ("", "none given"), ("relu4_2:0", "every weight is 0")])
def test_bad_layers_fail_validation_with_a_clear_message(nst_pack, layers, needle):
    with pytest.raises(harness.ComfyValidationError) as e:
        nst_pack.execute_prompt(basic_prompt(content_layers=layers))
    assert needle in str(e.value)
    assert "4" in e.value.node_errors  # the Encode Content node is the one blamed


@pytest.mark.parametrize("change, needle", [
    ({"init": "image"}, "nothing is connected to init_image"),
])
def test_bad_settings_fail_execution_with_a_clear_message(nst_pack, change, needle):
    with pytest.raises(harness.ComfyExecutionError) as e:
        nst_pack.execute_prompt(basic_prompt(**change))
    assert needle in e.value.details["exception_message"]
    assert e.value.details["node_id"] == "6"


def test_mask_with_the_wrong_shape_is_a_clear_error(nst_pack):
    p = basic_prompt()
    p["13"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}  # 1:1, content 4:3
    p["5"]["inputs"]["mask"] = ["13", 0]
    with pytest.raises(harness.ComfyExecutionError) as e:
        nst_pack.execute_prompt(p)
    assert "aspect ratio" in e.value.details["exception_message"]


def test_style_strength_and_style_loss_reach_the_optimisation(nst_pack):
    """Optimize's style_strength moves the result along the content-style trade-off, and each style
    loss runs through ComfyUI (sliced_w too); an unknown style loss is refused with its name and the
    choices (by validation, or by the node where a ComfyUI does not check optional combos)."""
    def run(**kw):
        res = nst_pack.execute_prompt(basic_prompt(steps=10, size=48, preview_interval=0, **kw))
        (img,) = res.images("9")
        return np.abs(to_array(img) - sample_array("tubingen.jpg", img.size)).mean()
    light, heavy = run(style_strength=0.1), run(style_strength=0.9)
    assert light < heavy, (light, heavy)   # more style, further from the photo
    for loss in ("mean_std", "w2", "sliced_w"):
        assert run(style_loss=loss) > 0.02, loss
    with pytest.raises((harness.ComfyValidationError, harness.ComfyExecutionError),
                       match=r"style[ _]loss.*gram, mean_std, w2, sliced_w|gramm"):
        nst_pack.execute_prompt(basic_prompt(steps=2, size=48, style_loss="gramm"))
