"""Every example workflow, converted the way the frontend queues it, runs in a real ComfyUI."""
from __future__ import annotations

import json

import numpy as np
import pytest

import harness
from nst_prompts import WORKFLOWS, fit, sample_array, to_array

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.json"))
SMALL = 64  # px, long side, for CI


def test_there_are_at_least_three_example_workflows():
    assert len(WORKFLOW_FILES) >= 3
    names = {p.stem for p in WORKFLOW_FILES}
    assert {"basic_style_transfer", "style_blend", "stock_nodes_chain"} <= names


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_workflow_has_a_real_thumbnail(path):
    from PIL import Image

    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"{thumb.name} is missing"
    assert thumb.stat().st_size < 100_000
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and 128 <= max(im.size) <= 1024
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    assert arr.std() > 20, "thumbnail is (nearly) blank"


def _content_size(prompt, optimize) -> tuple:
    """(w, h) of the image that reaches the Optimize node's content input."""
    encode = prompt[optimize["inputs"]["content"][0]]
    src = prompt[encode["inputs"]["image"][0]]
    if src["class_type"] == "ImageScale":
        return src["inputs"]["width"], src["inputs"]["height"]
    assert src["class_type"] == "NeuralStyleSampleImage", src
    from PIL import Image

    with Image.open(WORKFLOWS.parent / "assets" / "samples" / src["inputs"]["sample"]) as im:
        return im.size


def _content_sample(prompt, optimize) -> str:
    link = prompt[optimize["inputs"]["content"][0]]["inputs"]["image"]
    while prompt[link[0]]["class_type"] != "NeuralStyleSampleImage":
        link = prompt[link[0]]["inputs"]["image"]
    return prompt[link[0]]["inputs"]["sample"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_example_workflow_runs(nst_pack, object_info, path):
    ui = json.loads(path.read_text())
    prompt = harness.ui_to_api(ui, object_info)  # strict: widget counts must match the nodes
    optimizers = [n for n in prompt.values() if n["class_type"] == "NeuralStyleOptimize"]
    assert optimizers, "the workflow has no Optimize node"
    for node in optimizers:
        inputs = node["inputs"]
        # Shipped defaults stay modest, so that a CPU user sees a result in about a minute.
        assert inputs["size"] <= 384 and inputs["steps"] <= 200
        inputs.update(steps=6, start_size=0, size=SMALL if inputs["size"] else 0)
    for node in prompt.values():  # stock scalers feeding size-0 Optimize nodes: scale down too
        if node["class_type"] == "ImageScale":
            w, h = node["inputs"]["width"], node["inputs"]["height"]
            node["inputs"]["width"], node["inputs"]["height"] = fit((w, h), SMALL)
    res = nst_pack.execute_prompt(prompt)

    optimize = optimizers[0]
    expected = fit(_content_size(prompt, optimize), SMALL)
    content = sample_array(_content_sample(prompt, optimize), expected)
    saves = [nid for nid, n in prompt.items() if n["class_type"] == "SaveImage"]
    assert saves
    for nid in saves:
        (img,) = res.images(nid)
        assert img.size == expected
        assert np.abs(to_array(img) - content).mean() > 0.02, f"{path.stem}: output looks like the content"
