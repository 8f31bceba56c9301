"""ui_to_api: UI workflow JSON -> API prompt, checked against ComfyUI's real stock node definitions."""

from __future__ import annotations

import copy

import pytest

import harness


def _node(id, type, widgets_values=None, inputs=(), outputs=(), mode=0, title=None):
    node = {"id": id, "type": type, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": id, "mode": mode,
            "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs], "properties": {}}
    if widgets_values is not None:
        node["widgets_values"] = widgets_values
    if title:
        node["title"] = title
    return node


def _in(name, type, link=None, widget=False):
    d = {"name": name, "type": type, "link": link}
    if widget:
        d["widget"] = {"name": name}
    return d


def _out(name, type, links=()):
    return {"name": name, "type": type, "links": list(links)}


# A workflow as frontend 1.32 saves it (widget inputs listed as sockets too), exercising:
# control_after_generate after a seed, COMBOs, a widget converted to a socket and fed by a
# node (PrimitiveInt, itself with control_after_generate), a legacy PrimitiveNode, a Reroute,
# a Note, a bypassed node, a muted node, hidden inputs (SaveImage/PreviewImage) and a custom title.
STOCK_WORKFLOW = {
    "id": "00000000-0000-0000-0000-000000000000",
    "revision": 0,
    "last_node_id": 12,
    "last_link_id": 12,
    "nodes": [
        _node(1, "EmptyImage", [64, 48, 1, 16711680],
              inputs=[_in("width", "INT", widget=True), _in("height", "INT", widget=True),
                      _in("batch_size", "INT", widget=True), _in("color", "INT", widget=True)],
              outputs=[_out("IMAGE", "IMAGE", [1])]),
        _node(2, "ImageAddNoise", [123, "randomize", 0.25],
              inputs=[_in("image", "IMAGE", 1), _in("seed", "INT", widget=True),
                      _in("strength", "FLOAT", 9, widget=True)],
              outputs=[_out("IMAGE", "IMAGE", [2])]),
        _node(3, "Reroute", inputs=[_in("", "*", 2)], outputs=[_out("", "IMAGE", [3])]),
        _node(4, "ImageScale", ["bilinear", 32, 24, "disabled"],
              inputs=[_in("image", "IMAGE", 3), _in("upscale_method", "COMBO", widget=True),
                      _in("width", "INT", 4, widget=True), _in("height", "INT", widget=True),
                      _in("crop", "COMBO", widget=True)],
              outputs=[_out("IMAGE", "IMAGE", [5, 6, 10])]),
        _node(5, "PrimitiveInt", [40, "fixed"], inputs=[_in("value", "INT", widget=True)],
              outputs=[_out("INT", "INT", [4])]),
        _node(6, "SaveImage", ["nst_test"], title="Save it",
              inputs=[_in("images", "IMAGE", 5), _in("filename_prefix", "STRING", widget=True)]),
        _node(7, "Note", ["just a note"]),
        _node(8, "ImageInvert", [], mode=harness.MODE_BYPASS,
              inputs=[_in("image", "IMAGE", 6)], outputs=[_out("IMAGE", "IMAGE", [7])]),
        _node(9, "PreviewImage", [], inputs=[_in("images", "IMAGE", 7)]),
        _node(10, "SaveImage", ["muted"], mode=harness.MODE_NEVER,
              inputs=[_in("images", "IMAGE", 10), _in("filename_prefix", "STRING", widget=True)]),
        _node(11, "PrimitiveNode", [0.75, "fixed"], outputs=[_out("FLOAT", "FLOAT", [9])]),
    ],
    "links": [
        [1, 1, 0, 2, 0, "IMAGE"],
        [2, 2, 0, 3, 0, "*"],
        [3, 3, 0, 4, 0, "IMAGE"],
        [4, 5, 0, 4, 2, "INT"],
        [5, 4, 0, 6, 0, "IMAGE"],
        [6, 4, 0, 8, 0, "IMAGE"],
        [7, 8, 0, 9, 0, "IMAGE"],
        [9, 11, 0, 2, 2, "FLOAT"],
        [10, 4, 0, 10, 0, "IMAGE"],
    ],
    "groups": [],
    "config": {},
    "extra": {},
    "version": 0.4,
}

EXPECTED_API = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 16711680},
          "_meta": {"title": "EmptyImage"}},
    "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 123, "strength": 0.75},
          "_meta": {"title": "ImageAddNoise"}},
    "4": {"class_type": "ImageScale",
          "inputs": {"image": ["2", 0], "upscale_method": "bilinear", "width": ["5", 0], "height": 24,
                     "crop": "disabled"},
          "_meta": {"title": "Upscale Image"}},
    "5": {"class_type": "PrimitiveInt", "inputs": {"value": 40}, "_meta": {"title": "Int"}},
    "6": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "nst_test"},
          "_meta": {"title": "Save it"}},
    "9": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}, "_meta": {"title": "Preview Image"}},
}


def test_stock_workflow_converts_like_the_frontend(object_info):
    assert harness.ui_to_api(STOCK_WORKFLOW, object_info) == EXPECTED_API


def test_converted_stock_workflow_passes_comfyui_validation(comfy, object_info):
    v = comfy.validate_prompt(harness.ui_to_api(STOCK_WORKFLOW, object_info))
    assert v.valid, v.error
    assert sorted(v.outputs) == ["6", "9"]
    assert v.node_errors == {}


def test_links_in_object_format_and_dict_widgets_values(object_info):
    wf = copy.deepcopy(STOCK_WORKFLOW)
    wf["links"] = [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3], "target_slot": l[4],
                    "type": l[5]} for l in wf["links"]]
    wf["nodes"][0]["widgets_values"] = {"width": 64, "height": 48, "batch_size": 1, "color": 16711680}
    assert harness.ui_to_api(wf, object_info) == EXPECTED_API


def test_widget_lists_of_stock_nodes(object_info):
    names = lambda t: [w.name for w in harness.node_widgets(object_info[t])]  # noqa: E731
    # KSampler: seed gets control_after_generate; MODEL/CONDITIONING/LATENT are sockets.
    assert names("KSampler") == ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler",
                                 "denoise"]
    # LoadImage: the upload extension appends an "upload" button widget (stored as "image").
    assert names("LoadImage") == ["image", "upload"]
    # V3 node (comfy_api.latest io.Int with control_after_generate=True).
    assert names("PrimitiveInt") == ["value", "control_after_generate"]
    assert names("PreviewImage") == []


def test_load_image_upload_value_is_skipped(object_info):
    wf = {"nodes": [_node(1, "LoadImage", ["example.png", "image"],
                          outputs=[_out("IMAGE", "IMAGE", []), _out("MASK", "MASK", [])])], "links": []}
    assert harness.ui_to_api(wf, object_info)["1"]["inputs"] == {"image": "example.png"}


# Synthetic definitions for what no stock node has.
SYNTHETIC_INFO = {
    "Synthetic": {
        "input": {
            "required": {
                "pick": [["a", "b", "c"], {"control_after_generate": True}],
                "seed": ["INT", {"default": 0, "control_after_generate": False}],
                "noise_seed": ["INT", {"default": 0}],
                "vec": ["FLOAT", {"forceInput": True}],
                "mode": ["COMBO", {"options": ["x", "y"]}],
                "image": ["IMAGE"],
            },
            "optional": {
                "note": ["STRING", {"multiline": True}],
                "mask": ["MASK"],
                "flag": ["BOOLEAN", {"default": False}],
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        },
        "input_order": {"required": ["pick", "seed", "noise_seed", "vec", "mode", "image"],
                        "optional": ["note", "mask", "flag"], "hidden": ["unique_id"]},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "name": "Synthetic", "display_name": "Synthetic",
    },
    "Source": {"input": {"required": {}}, "output": ["FLOAT", "MASK"], "display_name": "Source"},
}


def test_synthetic_widget_rules():
    widgets = harness.node_widgets(SYNTHETIC_INFO["Synthetic"])
    assert [(w.name, w.serialize) for w in widgets] == [
        ("pick", True), ("control_after_generate", False), ("control_filter_list", False),  # COMBO control
        ("seed", True),  # control_after_generate explicitly False
        ("noise_seed", True), ("control_after_generate", False),  # named noise_seed: implicit control
        ("mode", True),  # "COMBO" with options (V3 style); vec is forceInput: a socket only
        ("note", True), ("flag", True),  # optional widgets follow the required ones
    ]


def test_synthetic_conversion_optional_sockets_and_lists():
    wf = {"nodes": [
        _node(1, "Source", [], outputs=[_out("FLOAT", "FLOAT", [1]), _out("MASK", "MASK", [2])]),
        _node(2, "Synthetic", ["b", "increment", "", 7, 8, "randomize", "y", ["l1", "l2"], True],
              inputs=[_in("vec", "FLOAT", 1), _in("image", "IMAGE", None), _in("mask", "MASK", 2)]),
    ], "links": [[1, 1, 0, 2, 0, "FLOAT"], [2, 1, 1, 2, 2, "MASK"]]}
    api = harness.ui_to_api(wf, SYNTHETIC_INFO)
    assert api["2"]["inputs"] == {"pick": "b", "seed": 7, "noise_seed": 8, "mode": "y",
                                  "note": {"__value__": ["l1", "l2"]}, "flag": True,
                                  "vec": ["1", 0], "mask": ["1", 1]}


def test_widget_count_mismatch_is_reported(object_info):
    wf = {"nodes": [_node(1, "ImageAddNoise", [1, 0.5], inputs=[_in("image", "IMAGE")])], "links": []}
    with pytest.raises(ValueError, match="control_after_generate"):
        harness.ui_to_api(wf, object_info)


def test_unknown_node_type_is_reported(object_info):
    wf = {"nodes": [_node(1, "NoSuchNode", [])], "links": []}
    with pytest.raises(KeyError, match="NoSuchNode"):
        harness.ui_to_api(wf, object_info)
