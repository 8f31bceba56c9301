"""pyproject.toml holds what the Comfy Registry reads, in the forms its publisher (comfy-cli) accepts.

The rules are the registry's documented ones (docs.comfy.org/registry/specifications) and the
checks comfy-cli's registry/config_parser.py applies before publishing; a field in the wrong form
is dropped there with only a warning, so it is checked here.
"""
from __future__ import annotations

import re
import sys

import pytest

from nst_prompts import REPO

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT, COMFY = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|[-_.](?![-_.]))*$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
VERSION_SPEC = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)?$")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}


def _requirement_names(lines) -> list[str]:
    return [re.split(r"[<>=!~ \[;]", line.strip(), maxsplit=1)[0].lower()
            for line in lines if line.strip() and not line.strip().startswith("#")]


def test_project_fields_the_registry_requires():
    assert NAME.match(PROJECT["name"]) and len(PROJECT["name"]) < 100
    assert SEMVER.match(PROJECT["version"])
    assert PROJECT["description"]
    assert set(PROJECT["license"]) <= {"file", "text"} and (REPO / PROJECT["license"]["file"]).is_file()
    assert PROJECT["urls"]["Repository"].startswith("https://")


def test_urls_under_the_names_the_registry_shows():
    """The registry's specification lists Repository (required), Documentation and "Bug Tracker"."""
    urls = PROJECT["urls"]
    assert set(urls) <= {"Repository", "Documentation", "Bug Tracker"} and "Bug Tracker" in urls
    assert all(u.startswith("https://") for u in urls.values())
    assert PROJECT["requires-python"].startswith(">=")


def test_tool_comfy_fields():
    assert COMFY["PublisherId"] and COMFY["DisplayName"]
    assert isinstance(COMFY["Icon"], str)
    assert all(VERSION_SPEC.match(p.strip()) for p in COMFY["requires-comfyui"].split(","))
    assert all((REPO / p).exists() for p in COMFY["includes"])


def test_classifiers_are_ones_the_registry_understands():
    classifiers = PROJECT["classifiers"]
    oses = [c.split(" :: ", 1)[1] for c in classifiers if c.startswith("Operating System :: ")]
    assert all(o.startswith(("Microsoft", "POSIX", "MacOS", "OS Independent")) for o in oses)
    envs = [c.split(" :: ", 1)[1] for c in classifiers if c.startswith("Environment ::")]
    assert set(envs) <= ACCELERATORS


def test_dependencies_match_requirements_txt_and_never_touch_comfyuis_torch():
    from_txt = _requirement_names((REPO / "requirements.txt").read_text().splitlines())
    from_toml = _requirement_names(PROJECT["dependencies"])
    assert sorted(from_txt) == sorted(from_toml)
    assert not {"torch", "torchvision", "torchaudio", "comfyui", "comfyui-frontend-package"} & set(from_txt)


def test_the_version_has_a_changelog_entry():
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## {PROJECT['version']}" in changelog


def test_example_workflows_name_this_pack_and_version_for_their_nodes():
    """The frontend looks nodes up in the registry by the cnr_id/ver a workflow stores."""
    import json

    for path in sorted((REPO / "example_workflows").glob("*.json")):
        for node in json.loads(path.read_text())["nodes"]:
            props = node.get("properties") or {}
            if node["type"].startswith("NeuralStyle"):
                assert props.get("cnr_id") == PROJECT["name"], (path.name, node["type"])
                assert props.get("ver") == PROJECT["version"], (path.name, node["type"], props.get("ver"))


def test_no_requirement_pins_torch_even_indirectly():
    """pip keeps an installed torch for an unpinned ``torch`` requirement; a pin would replace ComfyUI's."""
    from importlib.metadata import PackageNotFoundError, requires

    for name in _requirement_names((REPO / "requirements.txt").read_text().splitlines()):
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            pytest.fail(f"{name} from requirements.txt is not installed here: pip install -r requirements.txt")
        for req in needs:
            if "extra ==" in req:   # only installed on request (safetensors[torch])
                continue
            base = req.split(";")[0].strip()
            if re.split(r"[<>=!~ \[(]", base, maxsplit=1)[0].lower() in ("torch", "torchvision"):
                assert base.lower() in ("torch", "torchvision"), f"{name} requires {req!r}"
