"""Every example workflow loads clean in ComfyUI's own frontend, driven in headless Chromium.

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


def _assert_clean_and_catches_breakage(report, broken_name):
    by_name = {w.name: w for w in report.workflows}
    assert not by_name.pop(broken_name).clean, "the check missed a link the frontend had to repair"
    unclean = [w.summary() for w in by_name.values() if not w.clean]
    assert not unclean, f"frontend {report.frontend_version}:\n" + "\n".join(unclean)
    assert len(by_name) == len(list(WORKFLOWS.glob("*.json")))


def test_workflows_load_clean_in_the_bundled_frontend(comfy_server_process, tmp_path):
    broken = _broken_copy(tmp_path)
    paths = [broken, *sorted(WORKFLOWS.glob("*.json"))]
    frontend_check.stage_inputs(paths, comfy_server_process.io.input)
    report = frontend_check.check_in_browser(comfy_server_process.base_url, paths, CHROMIUM)
    _assert_clean_and_catches_breakage(report, broken.name)


@pytest.mark.skipif(not NEW_FRONTEND, reason="set NST_FRONTEND_ROOT to a frontend's static/ directory")
def test_workflows_load_clean_in_another_frontend(tmp_path):
    broken = _broken_copy(tmp_path)
    paths = [broken, *sorted(WORKFLOWS.glob("*.json"))]
    report = frontend_check.check_with_own_server(paths, CHROMIUM, NEW_FRONTEND)
    _assert_clean_and_catches_breakage(report, broken.name)
