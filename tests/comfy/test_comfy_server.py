"""The server harness, proven with stock nodes: /prompt, websocket messages, binary previews,
validation errors, and the custom-node plumbing (/object_info, /workflow_templates)."""

from __future__ import annotations

import pytest

import harness

PREVIEW_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 20, "batch_size": 3, "color": 0x0000FF}},
    # Bundled with ComfyUI (custom_nodes/websocket_image_save.py): one PNG preview frame per image
    # through comfy.utils.ProgressBar.update_absolute(i, n, ("PNG", image, None)).
    "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    "3": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                 "width": 10, "height": 5, "crop": "disabled"}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "server_test"}},
}


def test_server_answers_and_lists_nodes(comfy_server, comfy_client, comfy_server_process):
    assert comfy_server.startswith("http://127.0.0.1:")
    info = comfy_client.object_info()
    assert {"EmptyImage", "SaveImage", "SaveImageWebsocket"} <= set(info)
    stats = comfy_client.get("/system_stats")
    assert stats.status == 200 and stats.body["devices"][0]["type"] == "cpu"
    # /workflow_templates globs custom_nodes/*/example_workflows/*.json: a dict keyed by the
    # custom node folder name (ours: comfyui-neural-style), listing names without ".json".
    templates = comfy_client.get("/workflow_templates")
    assert templates.status == 200 and isinstance(templates.body, dict)
    assert comfy_server_process.is_running()


def test_prompt_over_websocket_with_preview_metadata(comfy_client):
    run = comfy_client.run_prompt(PREVIEW_PROMPT, timeout=120)
    assert run.status == "success", run.error
    types = [m["type"] for m in run.messages]
    assert types[0] == "execution_start" and "execution_success" in types
    assert types[-1] == "executing" and run.messages[-1]["data"]["node"] is None
    progress = [(d["value"], d["max"], d["node"]) for d in run.events("progress")]
    assert progress == [(0, 3, "2"), (1, 3, "2"), (2, 3, "2")]

    assert [f.event for f in run.previews] == [4, 4, 4]  # PREVIEW_IMAGE_WITH_METADATA
    frame = run.previews[0]
    assert frame.metadata["prompt_id"] == run.prompt_id and frame.metadata["node_id"] == "2"
    assert frame.image_type == "image/png"
    image = frame.image()
    assert image.size == (40, 20) and image.convert("RGB").getpixel((0, 0)) == (0, 0, 255)

    history = comfy_client.get(f"/history/{run.prompt_id}").body[run.prompt_id]
    assert history["status"]["status_str"] == "success"
    saved = history["outputs"]["4"]["images"][0]
    view = comfy_client.get(f"/view?filename={saved['filename']}&type={saved['type']}&subfolder={saved['subfolder']}")
    assert view.status == 200 and view.body[:8] == b"\x89PNG\r\n\x1a\n"


def test_legacy_preview_frames_without_feature_flag(comfy_client):
    prompt = {k: PREVIEW_PROMPT[k] for k in ("1", "2")}
    run = comfy_client.run_prompt(prompt, timeout=120, supports_preview_metadata=False)
    assert run.status == "success", run.error
    assert [f.event for f in run.previews] == [1, 1, 1]  # PREVIEW_IMAGE: 4-byte type + image
    assert run.previews[0].image_type == "image/png" and run.previews[0].metadata is None
    assert run.previews[0].image().size == (40, 20)


def test_invalid_input_is_a_400_with_node_errors_and_server_survives(comfy_client, comfy_server_process):
    bad = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    r = comfy_client.queue_prompt(bad, client_id="harness-test")
    assert r.status == 400
    assert r.body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = r.body["node_errors"]["1"]["errors"]
    assert errors[0]["type"] == "value_smaller_than_min" and errors[0]["extra_info"]["input_name"] == "width"
    with pytest.raises(harness.ComfyValidationError, match="smaller than min"):
        comfy_client.run_prompt(bad)

    assert comfy_server_process.is_running()
    good = {"1": dict(bad["1"], inputs=dict(bad["1"]["inputs"], width=8)), "2": bad["2"]}
    assert comfy_client.run_prompt(good, timeout=120).status == "success"


def test_execution_error_arrives_over_websocket(comfy_client):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../../escape"}},
    }
    run = comfy_client.run_prompt(prompt, timeout=120)
    assert run.status == "error"
    assert run.error["node_id"] == "2" and "outside the output folder" in run.error["exception_message"]


def test_pack_example_workflows_are_served_like_the_template_browser_fetches_them(comfy_client):
    # The frontend lists GET /workflow_templates ({custom node folder: [names]}) and fetches
    # /api/workflow_templates/<folder>/<name>.json and the thumbnail <name>.jpg.  The listing
    # globs every custom_nodes folder; the files are served only for packs that imported.
    listing = comfy_client.get("/workflow_templates").body
    for name in listing.get(harness.PACK_NAME, []):
        base = f"/api/workflow_templates/{harness.PACK_NAME}/{name}"
        workflow = comfy_client.get(base + ".json")
        assert workflow.status == 200 and isinstance(workflow.body, (dict, bytes)), name
        # Whether every template has its thumbnail is the pack's own test; here: the route serves them.
        if (harness.REPO_ROOT / "example_workflows" / f"{name}.jpg").is_file():
            thumb = comfy_client.get(base + ".jpg")
            assert thumb.status == 200 and thumb.body[:3] == b"\xff\xd8\xff", f"{name}.jpg"
