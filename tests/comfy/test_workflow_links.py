"""Every example workflow's links agree with its nodes, so the frontend loads it without repairs.

A UI workflow stores each connection twice: once in ``links`` as
``[id, origin_id, origin_slot, target_id, target_slot, type]`` and once on the nodes (the origin
output's ``links`` list, the target input's ``link``).  When the two disagree the frontend
patches the graph on load and logs "Expected node to match patched data".  Pure JSON: no
ComfyUI needed.
"""
from __future__ import annotations

import json

import pytest

from nst_prompts import WORKFLOWS

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.json"))


def _types_agree(a, b) -> bool:
    return a == b or "*" in (a, b)


def _check_link(link: list, nodes: dict) -> list[str]:
    """What is wrong with one entry of ``links`` seen from its two nodes."""
    lid, origin_id, origin_slot, target_id, target_slot, typ = link[:6]
    origin, target = nodes.get(origin_id), nodes.get(target_id)
    if origin is None or target is None:
        return [f"link {lid}: node {origin_id if origin is None else target_id} does not exist"]
    problems = []
    outs, ins = origin.get("outputs") or [], target.get("inputs") or []
    if origin_slot >= len(outs):
        problems.append(f"link {lid}: {origin['type']} #{origin_id} has no output slot {origin_slot}")
    else:
        out = outs[origin_slot]
        if lid not in (out.get("links") or []):
            problems.append(f"link {lid}: missing from {origin['type']} #{origin_id} output "
                            f"'{out.get('name')}' links {out.get('links')}")
        if not _types_agree(out.get("type"), typ):
            problems.append(f"link {lid}: type {typ} but output '{out.get('name')}' is {out.get('type')}")
    if target_slot >= len(ins):
        problems.append(f"link {lid}: {target['type']} #{target_id} has no input slot {target_slot}")
    else:
        inp = ins[target_slot]
        if inp.get("link") != lid:
            problems.append(f"link {lid}: {target['type']} #{target_id} input slot {target_slot} "
                            f"'{inp.get('name')}' holds link {inp.get('link')}")
        if not _types_agree(inp.get("type"), typ):
            problems.append(f"link {lid}: type {typ} but input '{inp.get('name')}' is {inp.get('type')}")
    return problems


def _check_node_side(nodes: dict, links: dict) -> list[str]:
    """Every link a node names exists in ``links`` and points back at that node and slot."""
    problems = []
    for nid, node in nodes.items():
        for slot, inp in enumerate(node.get("inputs") or []):
            lid = inp.get("link")
            if lid is not None and (lid not in links or links[lid][3:5] != [nid, slot]):
                problems.append(f"{node['type']} #{nid} input '{inp.get('name')}' names link {lid}, "
                                f"which does not end there")
        for slot, out in enumerate(node.get("outputs") or []):
            for lid in out.get("links") or []:
                if lid not in links or links[lid][1:3] != [nid, slot]:
                    problems.append(f"{node['type']} #{nid} output '{out.get('name')}' names link {lid}, "
                                    f"which does not start there")
    return problems


def link_problems(workflow: dict) -> list[str]:
    """Every disagreement between ``links`` and the nodes' own link records."""
    nodes = {n["id"]: n for n in workflow.get("nodes", [])}
    raw = workflow.get("links") or []
    links = {lk[0]: list(lk) for lk in raw}
    problems = [f"link id {lid} used twice" for lid in links if sum(lk[0] == lid for lk in raw) > 1]
    for link in links.values():
        problems += _check_link(link, nodes)
    problems += _check_node_side(nodes, links)
    if links and workflow.get("last_link_id", 0) < max(links):
        problems.append(f"last_link_id {workflow.get('last_link_id')} < highest link id {max(links)}")
    if nodes and workflow.get("last_node_id", 0) < max(nodes):
        problems.append(f"last_node_id {workflow.get('last_node_id')} < highest node id {max(nodes)}")
    return problems


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_workflow_links_agree_with_their_nodes(path):
    problems = link_problems(json.loads(path.read_text()))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_the_check_catches_a_link_whose_target_slot_moved():
    workflow = {
        "last_node_id": 2, "last_link_id": 1,
        "nodes": [{"id": 1, "type": "A", "outputs": [{"name": "x", "type": "IMAGE", "links": [1]}]},
                  {"id": 2, "type": "B", "inputs": [{"name": "a", "type": "INT", "link": None},
                                                    {"name": "b", "type": "IMAGE", "link": 1}]}],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    problems = link_problems(workflow)
    assert any("input slot 0 'a' holds link None" in p for p in problems)
    assert any("type IMAGE but input 'a' is INT" in p for p in problems)
    workflow["links"][0][4] = 1
    assert link_problems(workflow) == []
