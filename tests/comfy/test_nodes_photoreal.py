"""The photorealistic nodes run in ComfyUI: the term reaches the optimiser, the smoothing keeps the size."""
from __future__ import annotations

import pytest
import torch

import harness
from nst_prompts import basic_prompt


def _photo_prompt(loss_node: dict) -> dict:
    p = basic_prompt(style="golden_gate.jpg", style_layers="relu1_1,relu2_1,relu3_1,relu4_1:0.2",
                     steps=8, size=48, start_size=0, save=False)
    p["7"] = loss_node
    p["6"]["inputs"]["loss"] = ["7", 0]
    p["8"] = {"class_type": "NeuralStylePhotoSmooth",
              "inputs": {"image": ["6", 0], "guide": ["1", 0], "radius": 2, "eps": 1e-4}}
    p["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    return p


def _as_core(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2).float().clone()


def test_photoreal_loss_lowers_the_term_and_smooth_keeps_the_size(nst_pack):
    import nst_core
    from nst_core.photoreal import laplacian_term

    plain = {"class_type": "NeuralStyleLossSettings",
             "inputs": {"content_weight": 10.0, "style_weight": 100.0, "tv_weight": 0.001, "temporal_weight": 200.0}}
    photo = {"class_type": "NeuralStylePhotorealLoss",
             "inputs": {"photoreal_weight": 10000.0, "content_weight": 10.0, "style_weight": 100.0, "tv_weight": 0.001}}
    values = {}
    for name, node in (("plain", plain), ("photo", photo)):
        res = nst_pack.execute_prompt(_photo_prompt(node))
        out = _as_core(res.node_outputs("6")[0][0])
        assert out.shape == (1, 3, 36, 48)
        content = nst_core.resize(_as_core(res.node_outputs("1")[0][0]), (36, 48))
        values[name] = float(laplacian_term(content)(out))
        smoothed = res.node_outputs("8")[0][0]
        assert smoothed.shape == (1, 36, 48, 3)
        assert 0 < float((_as_core(smoothed) - out).abs().mean()) < 0.05
    assert values["photo"] < 0.5 * values["plain"]


def test_photo_smooth_refuses_a_guide_batch_of_another_length(nst_pack):
    p = {
        "1": {"class_type": "NeuralStyleSampleImage", "inputs": {"sample": "tubingen.jpg"}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
        "3": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
        "4": {"class_type": "NeuralStylePhotoSmooth", "inputs": {"image": ["2", 0], "guide": ["3", 0],
                                                                 "radius": 2, "eps": 1e-4}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    with pytest.raises(harness.ComfyExecutionError, match="one guide, or one per image"):
        nst_pack.execute_prompt(p)
