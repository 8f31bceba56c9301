"""Every example workflow, converted the way the frontend queues it, runs in a real ComfyUI."""
from __future__ import annotations

import json

import numpy as np
import pytest

import harness
from nst_prompts import WORKFLOWS, fit, loads_a_checkpoint, to_array

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.json"))
# Those that need a diffusion checkpoint run against a tiny one in test_diffusion_workflows.py.
PACK_ONLY_FILES = [p for p in WORKFLOW_FILES if not loads_a_checkpoint(p)]
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


def _content_frames(res, prompt, optimize) -> np.ndarray:
    """The IMAGE that reached the Optimize node's Encode Content, as ComfyUI passed it: [N, H, W, 3]
    (N > 1: video frames), whatever made it (a sample, a stock scaler, crops joined in a batch)."""
    encode = prompt[optimize["inputs"]["content"][0]]
    origin, slot = encode["inputs"]["image"]
    return res.node_outputs(origin)[slot][0].cpu().numpy()


def _resized(frame: np.ndarray, size) -> np.ndarray:
    """One frame as float RGB 0..1, resized (PIL bicubic) to (w, h), like sample_array."""
    from PIL import Image

    im = Image.fromarray(np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(im.resize(size, Image.BICUBIC), dtype=np.float32) / 255.0


def _animation(res, node_id):
    """(frame count, (w, h)) of the one animated file a SaveAnimatedWEBP node wrote."""
    import os

    import folder_paths
    from PIL import Image

    (item,) = res.ui_outputs[node_id]["images"]
    path = os.path.join(folder_paths.get_directory_by_type(item.get("type", "output")),
                        item.get("subfolder", ""), item["filename"])
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1), im.size


def _video(res, node_id):
    """The frames (RGB 0..1 arrays) of the one video file a SaveVideo node wrote."""
    import os

    import av
    import folder_paths

    (item,) = res.ui_outputs[node_id]["images"]
    path = os.path.join(folder_paths.get_directory_by_type(item.get("type", "output")),
                        item.get("subfolder", ""), item["filename"])
    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float32) / 255.0 for f in container.decode(video=0)]


def _check_texture(res, prompt, path) -> None:
    """A texture workflow: the saved texture has the canvas's size in multiples of 16 (seamless), is
    not blank, and whatever tiles it (stock Image Stitch) shows it 2×2."""
    (save,) = [nid for nid, n in prompt.items() if n["class_type"] == "SaveImage"]
    (img,) = res.images(save)
    canvas = next(n["inputs"] for n in prompt.values() if n["class_type"] == "NeuralStyleTextureCanvas")
    assert img.size == tuple(max(16, (s + 8) // 16 * 16) for s in (canvas["width"], canvas["height"]))
    assert to_array(img).std() > 0.05, f"{path.stem}: a blank texture"
    (preview,) = [nid for nid, n in prompt.items() if n["class_type"] == "PreviewImage"]
    (tiled,) = res.images(preview)
    assert tiled.size == (2 * img.size[0], 2 * img.size[1])
    assert np.abs(to_array(tiled)[: img.size[1], : img.size[0]] - to_array(img)).mean() < 0.01


@pytest.mark.parametrize("path", PACK_ONLY_FILES, ids=lambda p: p.stem)
def test_example_workflow_runs(nst_pack, object_info, path):
    ui = json.loads(path.read_text())
    prompt = harness.ui_to_api(ui, object_info)  # strict: widget counts must match the nodes
    optimizers = [n for n in prompt.values() if n["class_type"] == "NeuralStyleOptimize"]
    assert optimizers, "the workflow has no Optimize node"
    for node in optimizers:
        inputs = node["inputs"]
        # Shipped defaults stay modest, so that a CPU user sees a result in about a minute.
        assert inputs["size"] <= 384 and inputs["steps"] <= 200
        inputs.update(steps=6, size=SMALL if inputs["size"] else 0)
    for node in prompt.values():   # one scale
        if node["class_type"] == "NeuralStyleOptimizeSettings":
            node["inputs"]["start_size"] = 0
    for node in prompt.values():  # stock scalers and canvases feeding size-0 Optimize nodes: scale down too
        if node["class_type"] in ("ImageScale", "NeuralStyleTextureCanvas"):
            w, h = node["inputs"]["width"], node["inputs"]["height"]
            node["inputs"]["width"], node["inputs"]["height"] = fit((w, h), SMALL)
    res = nst_pack.execute_prompt(prompt)
    if prompt[optimizers[0]["inputs"]["content"][0]]["class_type"] == "NeuralStyleTextureCanvas":
        _check_texture(res, prompt, path)
        return

    frames = _content_frames(res, prompt, optimizers[0])
    expected = fit((frames.shape[2], frames.shape[1]), SMALL)
    contents = [_resized(f, expected) for f in frames]
    saves = [nid for nid, n in prompt.items() if n["class_type"] == "SaveImage"]
    videos = [nid for nid, n in prompt.items() if n["class_type"] == "SaveVideo"]
    assert saves or videos
    for nid in saves:
        images = res.images(nid)
        assert len(images) == len(contents), f"{path.stem}: one image per content frame"
        for img, content in zip(images, contents):
            assert img.size == expected
            assert np.abs(to_array(img) - content).mean() > 0.02, f"{path.stem}: output looks like the content"
    for nid in [nid for nid, n in prompt.items() if n["class_type"] == "SaveAnimatedWEBP"]:
        assert _animation(res, nid) == (len(contents), expected), f"{path.stem}: animation frames"
    for nid in videos:
        frames = _video(res, nid)
        assert len(frames) == len(contents), f"{path.stem}: one video frame per content frame"
        for frame, content in zip(frames, contents):
            assert frame.shape == content.shape, f"{path.stem}: video frame size"
            assert np.abs(frame - content).mean() > 0.02, f"{path.stem}: output looks like the content"
