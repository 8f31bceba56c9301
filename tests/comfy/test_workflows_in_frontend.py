"""Every example workflow loads clean in ComfyUI's own frontend, driven in headless Chromium, and the
frontend offers to download the models a workflow names (and only those).

Runs tools/check_workflows_in_frontend.py against the test server (ComfyUI 0.3.75 with its
bundled frontend).  Set NST_FRONTEND_ROOT to another frontend's ``static`` directory (e.g. the
newest ``comfyui-frontend-package``) to check that one too.  Skipped where no Chromium is
installed: CI installs only pip packages.
"""
from __future__ import annotations

import json
import os

import pytest

import harness
from nst_prompts import WORKFLOWS

frontend_check = harness._load_tool("check_workflows_in_frontend")
CHROMIUM = os.environ.get("NST_CHROMIUM") or frontend_check.find_chromium()
NEW_FRONTEND = os.environ.get("NST_FRONTEND_ROOT")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                                          "chromium); the frontend load check needs a browser")


def _broken_copy(tmp_path):
    """style_blend.json with its loss link pointing one slot off, as the file once shipped."""
    workflow = json.loads((WORKFLOWS / "style_blend.json").read_text())
    link = next(lk for lk in workflow["links"] if lk[5] == "NST_LOSS")
    link[4] -= 1
    path = tmp_path / "broken_style_blend.json"
    path.write_text(json.dumps(workflow))
    return path


def _without_models_copy(tmp_path):
    """A diffusion workflow whose checkpoint is named without its download address (no model lists)."""
    workflow = json.loads((WORKFLOWS / "diffusion_generate_then_paint.json").read_text())
    workflow.pop("models")
    for node in workflow["nodes"]:
        node["properties"].pop("models", None)
    path = tmp_path / "no_model_list.json"
    path.write_text(json.dumps(workflow))
    return path


def _paths(tmp_path):
    return [_broken_copy(tmp_path), _without_models_copy(tmp_path), *sorted(WORKFLOWS.glob("*.json"))]


def _assert_clean_and_catches_breakage(report):
    by_name = {w.name: w for w in report.workflows}
    assert not by_name.pop("broken_style_blend.json").clean, "the check missed a link the frontend had to repair"
    # Without the model list the frontend has nothing to download: what the list is for.
    assert by_name.pop("no_model_list.json").downloads_offered == []
    unclean = [w.summary() for w in by_name.values() if not w.clean]
    assert not unclean, f"frontend {report.frontend_version}:\n" + "\n".join(unclean)
    assert len(by_name) == len(list(WORKFLOWS.glob("*.json")))
    for name, result in by_name.items():   # a user who lacks a workflow's model is offered it
        declared = frontend_check.declared_models(json.loads((WORKFLOWS / name).read_text()))
        assert result.downloads_offered == declared, f"frontend {report.frontend_version}: {result.summary()}"


def test_workflows_load_clean_in_the_bundled_frontend(comfy_server_process, tmp_path):
    paths = _paths(tmp_path)
    frontend_check.stage_inputs(paths, comfy_server_process.io.input)
    report = frontend_check.check_in_browser(comfy_server_process.base_url, paths, CHROMIUM)
    _assert_clean_and_catches_breakage(report)


@pytest.mark.skipif(not NEW_FRONTEND, reason="set NST_FRONTEND_ROOT to a frontend's static/ directory")
def test_workflows_load_clean_in_another_frontend(tmp_path):
    report = frontend_check.check_with_own_server(_paths(tmp_path), CHROMIUM, NEW_FRONTEND)
    _assert_clean_and_catches_breakage(report)
