#!/usr/bin/env python
"""Upgrade a workflow saved with version 0.2 of this pack to the lean Optimize node of 0.3.

    python tools/upgrade_workflow.py my_workflow.json              # writes my_workflow.v0.3.json
    python tools/upgrade_workflow.py old.json -o new.json

Optimize 0.2 had 17 widgets; 0.3 shows size, steps, style_strength, style_loss, init, seed, color
and seamless, and takes the rest from the optional Optimize Settings and Video Settings nodes. Each old
Optimize node keeps its values: the face widgets move to their new places, and a settings node is
added and wired in where an old value differs from the default (a Video Settings node wherever the
old node was used for video: temporal off, or another flow, long-term, passes or frame steps) or
where another node drives a moved widget; links into widgets move with them.
The input file is never changed.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

# Optimize 0.2's widgets in their order; older files stop earlier (later widgets were added last).
OLD_WIDGETS = ["init", "optimizer", "steps", "size", "start_size", "seed", "color", "temporal", "precision",
               "preview_interval", "tile_size", "frame_steps", "style_strength", "style_loss", "flow", "long_term",
               "passes"]
FACE = ["size", "steps", "style_strength", "style_loss", "init", "seed", "color", "seamless"]
RUN = {"optimizer": "lbfgs", "start_size": 256, "precision": "auto", "tile_size": 0, "lr": 0.02,
       "history_size": 0, "preview_interval": 10}
VIDEO = {"temporal": True, "flow": "dis", "long_term": 0, "passes": 1, "frame_steps": 0}
DEFAULTS = {"init": "content", "steps": 100, "size": 512, "seed": 0, "color": "none", "style_strength": 0.5,
            "style_loss": "gram", "seamless": False, **RUN, **VIDEO}
TYPES = {"size": "INT", "steps": "INT", "style_strength": "FLOAT", "style_loss": "COMBO", "init": "COMBO",
         "seed": "INT", "color": "COMBO", "seamless": "BOOLEAN", "optimizer": "COMBO", "start_size": "INT",
         "precision": "COMBO", "tile_size": "INT", "lr": "FLOAT", "history_size": "INT", "preview_interval": "INT",
         "temporal": "BOOLEAN", "flow": "COMBO", "long_term": "INT", "passes": "INT", "frame_steps": "INT"}
VERSION = "0.3.0"
LINKED = [("vgg", "NST_MODEL"), ("content", "NST_CONTENT"), ("style", "NST_STYLE")]
OPTIONAL = [("loss", "NST_LOSS"), ("settings", "NST_SETTINGS"), ("video", "NST_VIDEO"), ("init_image", "IMAGE")]


def old_values(node: dict) -> dict:
    values = dict(DEFAULTS)
    values.update(zip(OLD_WIDGETS, node.get("widgets_values") or []))
    return values


def is_old_optimize(node: dict) -> bool:
    """An Optimize node of 0.2: it has an optimizer widget, or (older frontends list only the sockets
    among the inputs) its widget values start with init, a word, where 0.3's start with size."""
    if node.get("type") != "NeuralStyleOptimize":
        return False
    values = node.get("widgets_values") or [None]
    return any(i.get("name") == "optimizer" for i in node.get("inputs", [])) or isinstance(values[0], str)


class Graph:
    """A UI-format workflow being edited: new node and link ids, links by id."""

    def __init__(self, workflow: dict):
        self.w = workflow
        self.links = {link[0]: link for link in workflow["links"]}
        self.made = {}     # (type, widget values, links) -> the settings node made for them, shared

    def settings_node(self, kind: str, pos, values: dict, output: tuple, linked: dict) -> dict:
        """A settings node with these values: the one made already for an earlier Optimize, or a new
        one; ``linked`` (widget name -> link id) are the widgets another node drives, which go with
        them (a link has one target, so such a node is never shared)."""
        key = (kind, json.dumps(values), json.dumps(linked))
        if key not in self.made:
            self.made[key] = self.new_node(kind, pos, values, output, linked)
        return self.made[key]

    def new_node(self, kind: str, pos, values: dict, output: tuple, linked: dict) -> dict:
        """A node whose inputs are these widgets (by name, in order), as the frontend saves one."""
        self.w["last_node_id"] = max(self.w.get("last_node_id", 0), max(n["id"] for n in self.w["nodes"])) + 1
        node = {"id": self.w["last_node_id"], "type": kind, "pos": pos, "size": [300, 40 + 26 * len(values)],
                "flags": {}, "order": 0, "mode": 0,
                "inputs": [{"name": n, "type": TYPES[n], "link": linked.get(n), "widget": {"name": n}}
                           for n in values],
                "outputs": [{"name": output[0], "type": output[1], "links": []}],
                "properties": {"cnr_id": "comfyui-neural-style", "ver": VERSION, "Node name for S&R": kind},
                "widgets_values": list(values.values())}
        for slot, name in enumerate(values):
            if name in linked:
                self.links[linked[name]][3:5] = [node["id"], slot]
        self.w["nodes"].append(node)
        return node

    def connect(self, src: dict, dst: dict, slot: int) -> None:
        self.w["last_link_id"] = max(self.w.get("last_link_id", 0), max(self.links, default=0)) + 1
        link = [self.w["last_link_id"], src["id"], 0, dst["id"], slot, src["outputs"][0]["type"]]
        self.w["links"].append(link)
        self.links[link[0]] = link
        src["outputs"][0]["links"].append(link[0])
        dst["inputs"][slot]["link"] = link[0]


def upgrade_optimize(graph: Graph, node: dict) -> None:
    values = old_values(node)
    old_links = {i["name"]: i.get("link") for i in node["inputs"]}
    inputs = [{"name": n, "type": t, "link": old_links.get(n)} for n, t in LINKED]
    inputs += [{"name": n, "type": TYPES[n], "link": old_links.get(n), "widget": {"name": n}} for n in FACE]
    inputs += [{"name": n, "type": t, "link": old_links.get(n), "shape": 7} for n, t in OPTIONAL]
    node["inputs"], node["widgets_values"] = inputs, [values[n] for n in FACE]
    for slot, i in enumerate(inputs):      # links keep their ids; their target slot moves
        if i["link"] is not None:
            graph.links[i["link"]][4] = slot
    x, y = node["pos"][0], node["pos"][1] + node.get("size", [0, 400])[1] + 40
    for moved, kind, output, slot in ((RUN, "NeuralStyleOptimizeSettings", ("settings", "NST_SETTINGS"), 1),
                                      (VIDEO, "NeuralStyleVideoSettings", ("video", "NST_VIDEO"), 2)):
        linked = {k: old_links[k] for k in moved if old_links.get(k) is not None}
        if linked or any(values[k] != v for k, v in moved.items()):
            settings = graph.settings_node(kind, [x, y], {k: values[k] for k in moved}, output, linked)
            graph.connect(settings, node, len(LINKED) + len(FACE) + slot)
            y += settings["size"][1] + 40


def upgrade(workflow: dict) -> dict:
    out = copy.deepcopy(workflow)
    graph = Graph(out)
    for node in list(out["nodes"]):
        if is_old_optimize(node):
            upgrade_optimize(graph, node)
        if node.get("properties", {}).get("cnr_id") == "comfyui-neural-style":
            node["properties"]["ver"] = VERSION
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workflow", type=Path)
    p.add_argument("-o", "--output", type=Path)
    a = p.parse_args(argv)
    out = a.output or a.workflow.with_suffix(".v0.3.json")
    if out.resolve() == a.workflow.resolve():
        print("error: the output would replace the input; give another -o", file=sys.stderr)
        return 2
    try:
        workflow = json.loads(a.workflow.read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {a.workflow}: {e}", file=sys.stderr)
        return 2
    if "nodes" not in workflow:
        print(f"error: {a.workflow} is not a workflow saved by ComfyUI's frontend (no 'nodes')", file=sys.stderr)
        return 2
    new = upgrade(workflow)
    n = sum(1 for node in workflow["nodes"] if is_old_optimize(node))
    out.write_text(json.dumps(new, indent=2) + "\n")
    print(f"wrote {out} ({n} Optimize node(s) upgraded)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
