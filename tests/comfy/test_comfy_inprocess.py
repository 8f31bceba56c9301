"""The in-process harness, proven with stock nodes: load, convert, validate, execute, previews."""

from __future__ import annotations

import pytest

import harness

RED = 0xFF0000

# EmptyImage -> ImageScale -> SaveImage and PreviewImage, as the UI saves it (legacy-style
# inputs: only sockets listed).
UI_WORKFLOW = {
    "last_node_id": 4,
    "last_link_id": 3,
    "nodes": [
        {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [64, 48, 1, RED]},
        {"id": 2, "type": "ImageScale", "mode": 0,
         "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2, 3]}],
         "widgets_values": ["nearest-exact", 32, 24, "disabled"]},
        {"id": 3, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
         "outputs": [], "widgets_values": ["harness"]},
        {"id": 4, "type": "PreviewImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 3}],
         "outputs": [], "widgets_values": []},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 2, 0, 4, 0, "IMAGE"]],
    "version": 0.4,
}


def test_comfyui_loaded_with_stock_nodes_and_custom_node_dir(comfy, node_class_mappings, comfy_layout):
    for name in ("EmptyImage", "ImageScale", "SaveImage", "PreviewImage", "PrimitiveInt", "SaveImageWebsocket"):
        assert name in node_class_mappings
    assert comfy.args.cpu is True
    assert str(comfy_layout.custom_nodes) in comfy.folder_paths.get_folder_paths("custom_nodes")
    assert str(comfy_layout.vgg_dir) in comfy.folder_paths.get_folder_paths("vgg")
    # Our pack was offered to ComfyUI's loader through the symlink (whether it loaded is the
    # pack's business: see the nst_pack fixture).
    assert str(comfy_layout.pack_dir) in comfy.custom_node_results
    assert comfy.folder_paths.get_output_directory().startswith(str(comfy_layout.base))


def test_ui_workflow_executes(comfy, object_info):
    api = harness.ui_to_api(UI_WORKFLOW, object_info)
    result = comfy.execute_prompt(api)

    saved = result.images("3")
    assert len(saved) == 1 and saved[0].size == (32, 24)
    assert saved[0].convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    assert result.ui_outputs["4"]["images"][0]["type"] == "temp"
    assert result.images("4")[0].size == (32, 24)

    image = result.node_outputs("2")[0][0]  # ImageScale: slot 0, first item
    assert tuple(image.shape) == (1, 24, 32, 3)
    assert float(image[..., 0].min()) == 1.0 and float(image[..., 1:].max()) == 0.0

    assert result.events("execution_start") and result.events("execution_success")
    executed = [d["node"] for d in result.events("executing")]
    assert executed[-1] is None and {"1", "2", "3", "4"} <= set(executed)


def test_validation_error_is_reported_like_comfyui(comfy, object_info):
    api = harness.ui_to_api(UI_WORKFLOW, object_info)
    api["1"]["inputs"]["width"] = 0  # EmptyImage width has min 1
    with pytest.raises(harness.ComfyValidationError) as info:
        comfy.execute_prompt(api)
    err = info.value
    assert err.error["type"] == "prompt_outputs_failed_validation"
    assert [e["type"] for e in err.node_errors["1"]["errors"]] == ["value_smaller_than_min"]
    assert err.node_errors["1"]["class_type"] == "EmptyImage"


def test_execution_error_is_raised_with_comfyui_message(comfy):
    api = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        # Passes validation, fails at run time: SaveImage refuses paths outside the output dir.
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../../escape"}},
    }
    with pytest.raises(harness.ComfyExecutionError) as info:
        comfy.execute_prompt(api)
    assert info.value.event == "execution_error"
    assert info.value.details["node_id"] == "2"
    assert "outside the output folder" in info.value.details["exception_message"]


def test_progress_and_preview_frames_in_process(comfy):
    # SaveImageWebsocket (ComfyUI's bundled example custom node) reports each image through
    # comfy.utils.ProgressBar(...).update_absolute(i, n, ("PNG", image, None)).
    api = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 2, "color": 0x00FF00}},
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    result = comfy.execute_prompt(api)
    assert [(p["value"], p["max"], p["node"]) for p in result.progress] == [(0, 2, "2"), (1, 2, "2")]
    assert len(result.previews) == 2
    preview = result.previews[0]
    assert preview.image_format == "PNG" and preview.image.size == (16, 8)
    assert preview.metadata["node_id"] == "2" and preview.metadata["prompt_id"] == result.prompt_id


def test_preview_sent_image_matches_server_resizing():
    from PIL import Image

    small = harness.Preview("JPEG", Image.new("RGB", (48, 36)), 512, None)
    assert small.sent_image().size == (512, 384)  # ImageOps.contain enlarges, as server.py does
    assert harness.Preview("PNG", Image.new("RGB", (48, 36)), None, None).sent_image().size == (48, 36)


def test_run_ui_workflow_shortcut(comfy):
    result = comfy.run_ui_workflow(UI_WORKFLOW)
    assert result.images("3")[0].size == (32, 24)
