"""Workflows and prompts written for Optimize 0.2 (17 widgets): the upgrade tool keeps every value,
and a prompt that still sets a moved input is refused by name instead of run with other values."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import harness
from nst_prompts import REPO, basic_prompt
from test_workflow_links import _check_link

OLD = Path(__file__).resolve().parent / "data" / "video_frames_0.2.json"


def _tool():
    spec = importlib.util.spec_from_file_location("upgrade_workflow", REPO / "tools" / "upgrade_workflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_upgraded_0_2_workflow_keeps_every_value_and_validates(nst_pack, object_info, tmp_path):
    out = tmp_path / "new.json"
    before = OLD.read_bytes()
    assert _tool().main([str(OLD), "-o", str(out)]) == 0
    assert OLD.read_bytes() == before, "the input was changed"
    old, new = json.loads(OLD.read_text()), json.loads(out.read_text())
    (old_opt,) = [n for n in old["nodes"] if n["type"] == "NeuralStyleOptimize"]
    (opt,) = [n for n in new["nodes"] if n["type"] == "NeuralStyleOptimize"]
    # 0.2 order: init, optimizer, steps, size, start_size, seed, color, temporal, precision, ...
    init, _, steps, size, start, seed, color = old_opt["widgets_values"][:7]
    assert opt["widgets_values"] == [size, steps, 0.5, "gram", init, seed, color, False]
    (settings,) = [n for n in new["nodes"] if n["type"] == "NeuralStyleOptimizeSettings"]
    assert settings["widgets_values"][1] == start == 128
    nodes = {n["id"]: n for n in new["nodes"]}
    assert not [p for link in new["links"] for p in _check_link(link, nodes)]
    prompt = harness.ui_to_api(new, object_info)   # strict: widget counts must match the nodes
    assert prompt[str(opt["id"])]["inputs"]["settings"] == [str(settings["id"]), 0]
    v = nst_pack.validate_prompt(prompt)
    assert v.valid, v.node_errors


def test_upgrade_keeps_widgets_driven_by_other_nodes_driven():
    """A Primitive on seed (a face widget) and one on tile_size (moved): both links survive, into
    seed's new slot and into the Optimize Settings node's tile_size."""
    w = json.loads(OLD.read_text())
    (opt,) = [n for n in w["nodes"] if n["type"] == "NeuralStyleOptimize"]
    names = [i["name"] for i in opt["inputs"]]
    for k, name in enumerate(("seed", "tile_size")):
        nid, lid = w["last_node_id"] + 1, w["last_link_id"] + 1
        w["nodes"].append({"id": nid, "type": "PrimitiveNode", "pos": [0, 0], "inputs": [], "properties": {},
                           "outputs": [{"name": "INT", "type": "INT", "links": [lid], "widget": {"name": name}}],
                           "widgets_values": [7 + k, "fixed"]})
        opt["inputs"][names.index(name)]["link"] = lid
        w["links"].append([lid, nid, 0, opt["id"], names.index(name), "INT"])
        w["last_node_id"], w["last_link_id"] = nid, lid
    new = _tool().upgrade(w)
    nodes = {n["id"]: n for n in new["nodes"]}
    assert not [p for link in new["links"] for p in _check_link(link, nodes)]
    driven = {(nodes[t]["type"], nodes[t]["inputs"][slot]["name"])
              for _, src, _, t, slot, _ in new["links"] if nodes[src]["type"] == "PrimitiveNode"}
    assert driven == {("NeuralStyleOptimize", "seed"), ("NeuralStyleOptimizeSettings", "tile_size")}


def test_upgrade_knows_a_0_2_optimize_saved_without_its_widgets_among_the_inputs():
    """Older frontends list only the sockets among a node's inputs: the node is still upgraded,
    with its values and its links."""
    w = json.loads(OLD.read_text())
    (opt,) = [n for n in w["nodes"] if n["type"] == "NeuralStyleOptimize"]
    opt["inputs"] = [i for i in opt["inputs"] if "widget" not in i]
    links = {link[0]: link for link in w["links"]}
    for slot, i in enumerate(opt["inputs"]):
        if i["link"] is not None:
            links[i["link"]][4] = slot
    new = _tool().upgrade(w)
    (upgraded,) = [n for n in new["nodes"] if n["type"] == "NeuralStyleOptimize"]
    init, _, steps, size, _, seed, color = opt["widgets_values"][:7]
    assert upgraded["widgets_values"] == [size, steps, 0.5, "gram", init, seed, color, False]
    assert [n["type"] for n in new["nodes"]].count("NeuralStyleOptimizeSettings") == 1
    nodes = {n["id"]: n for n in new["nodes"]}
    assert not [p for link in new["links"] for p in _check_link(link, nodes)]
    assert not _tool().is_old_optimize(upgraded)


def test_upgrade_refuses_to_overwrite_its_input(tmp_path):
    copy = tmp_path / "w.json"
    copy.write_text(OLD.read_text())
    assert _tool().main([str(copy), "-o", str(copy)]) == 2
    assert copy.read_text() == OLD.read_text()


@pytest.mark.parametrize("moved, where", [("tile_size", "Optimize Settings"), ("passes", "Video Settings")])
def test_prompt_setting_a_moved_input_is_refused_by_name(nst_pack, moved, where):
    p = basic_prompt(save=False)
    p["6"]["inputs"][moved] = 2 if moved == "passes" else 256
    p["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    with pytest.raises(harness.ComfyExecutionError) as e:
        nst_pack.execute_prompt(p)
    message = e.value.details["exception_message"]
    assert moved in message and where in message, message
