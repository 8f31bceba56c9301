"""The pack in a real ComfyUI server: HTTP API, websocket progress and previews, interrupt, errors."""
from __future__ import annotations

import itertools
import json
import time

import harness
from nst_prompts import WORKFLOWS, basic_prompt

PACK = harness.PACK_NAME
_seeds = itertools.count(1000)


def _prompt(**kw):
    """basic_prompt with a fresh seed, so the server's cache never answers for the Optimize node."""
    return basic_prompt(seed=next(_seeds), **kw)


def test_object_info_lists_our_nodes(comfy_client):
    info = comfy_client.object_info()
    ours = {name: d for name, d in info.items() if d.get("python_module") == f"custom_nodes.{PACK}"}
    assert set(ours) == {"NeuralStyleLoadVGG", "NeuralStyleSampleImage", "NeuralStyleEncodeContent",
                         "NeuralStyleEncodeStyle", "NeuralStyleLossSettings", "NeuralStyleOptimize",
                         "NeuralStyleColorMatch", "NeuralStylePhotorealLoss", "NeuralStylePhotoSmooth",
                         "NeuralStyleOptimizeSettings", "NeuralStyleVideoSettings", "NeuralStyleTextureCanvas",
                         "NeuralStyleSampleVideo"}
    assert {d["category"] for d in ours.values()} == {"image/style transfer"}
    r = comfy_client.get("/object_info/NeuralStyleOptimize")
    assert r.status == 200 and r.body["NeuralStyleOptimize"]["output_name"] == ["image", "loss_plot"]


def test_workflow_templates_lists_and_serves_our_workflows(comfy_client):
    r = comfy_client.get("/workflow_templates")
    assert r.status == 200
    assert sorted(r.body[PACK]) == sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    for name in r.body[PACK]:
        wf = comfy_client.get(f"/api/workflow_templates/{PACK}/{name}.json")
        assert wf.status == 200
        served = wf.body if isinstance(wf.body, dict) else json.loads(wf.body)
        assert served == json.loads((WORKFLOWS / f"{name}.json").read_text())
        thumb = comfy_client.get(f"/api/workflow_templates/{PACK}/{name}.jpg")
        assert thumb.status == 200 and thumb.body[:3] == b"\xff\xd8\xff"  # a JPEG


def test_prompt_completes_with_progress_and_binary_previews(comfy_client):
    run = comfy_client.run_prompt(_prompt(steps=4, size=48, preview_interval=1), timeout=180)
    assert run.status == "success", run.error
    progress = [d for d in run.events("progress") if d["node"] == "6"]
    assert [d["value"] for d in progress] == [1, 2, 3, 4] and progress[-1]["max"] == 4
    previews = run.previews
    assert len(previews) >= 1
    frame = previews[0]
    assert frame.event == 4 and frame.metadata["node_id"] == "6" and frame.image_type == "image/jpeg"
    assert frame.image().size == (48, 36)  # the current image itself, not enlarged
    saved = [d for d in run.events("executed") if d["node"] == "9"]
    assert saved and saved[0]["output"]["images"][0]["filename"].startswith("nst_test")


def test_legacy_clients_get_unencoded_preview_frames(comfy_client):
    run = comfy_client.run_prompt(_prompt(steps=2, size=40, preview_interval=1), timeout=180,
                                  supports_preview_metadata=False)
    assert run.status == "success", run.error
    assert run.previews and run.previews[0].event == 1 and run.previews[0].image().size == (40, 30)


def test_interrupt_ends_a_long_run_within_two_seconds_and_the_next_prompt_runs(comfy_client):
    long_run = _prompt(steps=5000, size=64, preview_interval=0, save=False)
    long_run["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    t = {}

    def interrupt_on_first_progress(msg):
        if not isinstance(msg, dict):
            return
        if "sent" not in t and msg.get("type") == "progress" and msg["data"].get("node") == "6":
            t["sent"] = time.monotonic()
            assert comfy_client.post("/interrupt", {}).status == 200
        elif msg.get("type") == "execution_interrupted":
            t["ended"] = time.monotonic()

    with comfy_client.websocket() as ws:
        r = comfy_client.queue_prompt(long_run, client_id=ws.client_id)
        assert r.status == 200, r.body
        run = ws.collect(r.body["prompt_id"], timeout=180, on_message=interrupt_on_first_progress)
    assert run.status == "interrupted", run.messages[-3:]
    assert run.error["node_id"] == "6"
    elapsed = t["ended"] - t["sent"]
    assert elapsed < 2.0, f"the run took {elapsed:.2f}s to stop after /interrupt"
    last = max(d["value"] for d in run.events("progress") if d["node"] == "6")
    assert last < 100
    # The server is fine and runs the next prompt.
    after = comfy_client.run_prompt(_prompt(steps=2, size=40), timeout=180)
    assert after.status == "success", after.error


def test_invalid_inputs_are_reported_and_the_server_keeps_running(comfy_client, comfy_server_process):
    r = comfy_client.queue_prompt(_prompt(content_layers="relu4_2, relu4_9"))
    assert r.status == 400
    details = json.dumps(r.body["node_errors"]["4"])
    assert "relu4_9" in details and "Valid names" in details

    r = comfy_client.queue_prompt(_prompt(size=16))   # refused by Optimize's validate_inputs
    assert r.status == 400
    details = json.dumps(r.body["node_errors"]["6"])
    assert "size is 16" in details and "from 32 to 16384" in details

    p = _prompt()
    p["5"]["inputs"]["weight"] = 0.0      # valid on its own; the run finds no style to transfer
    run = comfy_client.run_prompt(p, timeout=180)
    assert run.status == "error"
    assert run.error["node_id"] == "6" and "every style weight is 0" in run.error["exception_message"]

    assert comfy_server_process.is_running()
    ok = comfy_client.run_prompt(_prompt(steps=2, size=40), timeout=180)
    assert ok.status == "success", ok.error
