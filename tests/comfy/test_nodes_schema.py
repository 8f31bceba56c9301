"""The pack as ComfyUI loads it: node ids, schemas, the vgg model folder and the Load VGG cache."""
from __future__ import annotations

import os

import pytest

EXPECTED_NODES = {
    "NeuralStyleLoadVGG", "NeuralStyleSampleImage", "NeuralStyleSampleVideo", "NeuralStyleEncodeContent",
    "NeuralStyleTextureCanvas",
    "NeuralStyleEncodeStyle", "NeuralStyleLossSettings", "NeuralStyleOptimizeSettings", "NeuralStyleVideoSettings",
    "NeuralStyleOptimize", "NeuralStyleColorMatch", "NeuralStylePhotorealLoss", "NeuralStylePhotoSmooth",
}
SOCKET_TYPES = {"IMAGE", "MASK", "NST_MODEL", "NST_CONTENT", "NST_STYLE", "NST_LOSS", "NST_SETTINGS", "NST_VIDEO"}
WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}
DEFAULT_WEIGHTS = "default (original VGG19, offline)"


def test_pack_registers_exactly_our_prefixed_nodes(nst_pack):
    names = set(nst_pack.pack_node_names())
    assert names == EXPECTED_NODES
    assert all(n.startswith("NeuralStyle") for n in names)
    # Loaded through comfy_entrypoint (V3), as a custom node of its own name.
    assert hasattr(nst_pack.pack_module, "comfy_entrypoint")
    assert not hasattr(nst_pack.pack_module, "NODE_CLASS_MAPPINGS")


@pytest.mark.parametrize("node_id", sorted(EXPECTED_NODES))
def test_schema_category_tooltips_defaults_ranges(nst_pack, object_info, node_id):
    info = object_info[node_id]
    assert info["category"] == "image/style transfer"
    assert info["display_name"].startswith("Neural Style: ")
    assert len(info["description"]) > 40
    assert info["python_module"] == "custom_nodes.comfyui-neural-style"
    inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    assert inputs, f"{node_id} has no inputs"
    for name, (typ, opts) in inputs.items():
        where = f"{node_id}.{name}"
        assert len(opts.get("tooltip") or "") > 10, f"{where}: no tooltip"
        if isinstance(typ, str) and typ in SOCKET_TYPES:
            continue  # sockets carry no default
        assert "default" in opts and opts["default"] is not None, f"{where}: no default"
        if typ in ("INT", "FLOAT"):
            assert "min" in opts and "max" in opts, f"{where}: number without a range"
            assert opts["min"] <= opts["default"] <= opts["max"], f"{where}: default outside its range"
        if typ == "COMBO":
            assert opts["default"] in opts["options"], f"{where}: default not among the options"


def _widgets(info) -> dict:
    inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    return {n: v for n, v in inputs.items() if isinstance(v[0], list) or v[0] in WIDGET_TYPES}


def test_optimize_shows_the_everyday_controls_and_the_settings_nodes_the_rest(object_info):
    assert list(_widgets(object_info["NeuralStyleOptimize"])) == [
        "size", "steps", "style_strength", "style_loss", "init", "seed", "color", "seamless"]
    optional = object_info["NeuralStyleOptimize"]["input"]["optional"]
    assert {k: v[0] for k, v in optional.items()} == {"loss": "NST_LOSS", "settings": "NST_SETTINGS",
                                                      "video": "NST_VIDEO", "init_image": "IMAGE"}
    assert list(_widgets(object_info["NeuralStyleOptimizeSettings"])) == [
        "optimizer", "start_size", "precision", "tile_size", "lr", "history_size", "preview_interval"]
    assert list(_widgets(object_info["NeuralStyleVideoSettings"])) == [
        "temporal", "flow", "long_term", "passes", "frame_steps"]


def test_each_option_is_declared_once_for_the_cli_and_the_nodes(object_info):
    """The node's widget and the CLI's flag come from one declaration: the same default, the same
    range and the same text (the tooltip is the CLI's help)."""
    import nst_core
    from nst_core import cli

    help_of = {a.dest: a for a in cli.build_parser()._actions}
    owners = [nst_core.Options, nst_core.LossWeights, nst_core.VideoOptions]
    checked = 0
    for node_id in ("NeuralStyleOptimize", "NeuralStyleOptimizeSettings", "NeuralStyleVideoSettings",
                    "NeuralStyleLossSettings"):
        for name, (typ, opts) in _widgets(object_info[node_id]).items():
            owner = next((o for o in owners if name in nst_core.by_key(o)), None)
            if owner is None:
                continue   # preview_interval: a ComfyUI-only input
            field = nst_core.by_key(owner)[name]
            spec, kind = nst_core.spec_of(owner, field), nst_core.kind(owner, field)
            assert opts["tooltip"] == spec.describe(kind) == help_of[name].help, name
            assert opts["default"] == getattr(owner(), field), name
            if typ in ("INT", "FLOAT"):
                assert opts["max"] == spec.high, name
            checked += 1
    assert checked == 8 + 6 + 5 + 4, checked


def test_search_aliases_where_the_schema_has_them(nst_pack, object_info):
    """The node search finds the nodes by words like "style transfer" where ComfyUI's V3 schema has
    ``search_aliases`` (after 0.3.75); 0.3.75's has not, and builds the schemas without them."""
    import dataclasses
    import sys

    from comfy_api.latest import io

    search = sys.modules[f"{nst_pack.pack_module.__name__}.nodes.search"]
    assert set(search.ALIASES) == EXPECTED_NODES
    assert {"style transfer", "gatys", "vgg", "paint like"} <= set(search.ALIASES["NeuralStyleOptimize"])

    @dataclasses.dataclass
    class NewerSchema:   # the field as the newer V3 schema declares it
        node_id: str
        search_aliases: list = dataclasses.field(default_factory=list)

    assert search.search_aliases("NeuralStyleOptimize", NewerSchema) == {
        "search_aliases": list(search.ALIASES["NeuralStyleOptimize"])}
    has_field = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}
    for node_id in EXPECTED_NODES:
        assert object_info[node_id].get("search_aliases") == (list(search.ALIASES[node_id]) if has_field else None)


def test_socket_types_and_outputs(object_info):
    opt = object_info["NeuralStyleOptimize"]
    req = opt["input"]["required"]
    assert [req[k][0] for k in ("vgg", "content", "style")] == ["NST_MODEL", "NST_CONTENT", "NST_STYLE"]
    assert opt["input"]["optional"]["loss"][0] == "NST_LOSS"
    assert opt["input"]["optional"]["init_image"][0] == "IMAGE"
    assert opt["output"] == ["IMAGE", "IMAGE"] and opt["output_name"] == ["image", "loss_plot"]
    assert object_info["NeuralStyleEncodeStyle"]["input"]["optional"]["previous"][0] == "NST_STYLE"
    assert object_info["NeuralStyleEncodeStyle"]["output"] == ["NST_STYLE"]
    assert object_info["NeuralStyleLoadVGG"]["output"] == ["NST_MODEL"]
    # The seed must not get the frontend's "randomize after generate" widget: runs are reproducible.
    assert req["seed"][1]["control_after_generate"] is False
    # Loss Settings defaults are nst_core's LossWeights.
    ls = object_info["NeuralStyleLossSettings"]["input"]["required"]
    import nst_core

    d = nst_core.LossWeights()
    assert [ls[k][1]["default"] for k in ("content_weight", "style_weight", "tv_weight", "temporal_weight")] == \
        [d.content, d.style, d.tv, d.temporal]


def test_vgg_folder_keeps_extra_model_paths_and_adds_models_vgg(nst_pack, comfy_layout):
    import folder_paths

    paths, exts = folder_paths.folder_names_and_paths["vgg"]
    assert str(comfy_layout.vgg_dir) in paths  # from extra_model_paths.yaml, kept
    assert os.path.join(folder_paths.models_dir, "vgg") in paths  # ours
    assert {".safetensors", ".pth", ".pt", ".bin"} <= set(exts)


@pytest.fixture(scope="module")
def vgg_file(nst_pack, comfy_layout):
    """A real VGG19 weights file (the built-in weights converted) in the yaml-configured folder."""
    import nst_core

    path = comfy_layout.vgg_dir / "test_vgg19.safetensors"
    if not path.exists():
        nst_core.convert_to_safetensors(nst_core.DEFAULT, path)
    return path


def test_load_vgg_lists_default_first_then_files(nst_pack, vgg_file):
    options = nst_pack.object_info()["NeuralStyleLoadVGG"]["input"]["required"]["weights"][1]["options"]
    assert options[0] == DEFAULT_WEIGHTS
    assert vgg_file.name in options


def test_load_vgg_runs_and_caches_by_file_mtime_and_pooling(nst_pack, vgg_file):
    models = nst_pack.pack_module.nodes.models
    load = models.load_model
    a = load(vgg_file.name, "max")
    assert a.arch == "vgg19" and a.convention == "caffe" and a.pooling == "max"
    assert next(a.parameters()).device.type == "cpu"
    assert not any(p.is_inference() for p in a.parameters()), "built inside inference mode"
    assert load(vgg_file.name, "max") is a  # cache hit
    b = load(vgg_file.name, "avg")
    assert b is not a and b.pooling == "avg"
    st = vgg_file.stat()
    os.utime(vgg_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))  # the file "changed"
    c = load(vgg_file.name, "max")
    assert c is not a
    default = load(DEFAULT_WEIGHTS, "max")
    assert default.source.startswith("default")


def test_load_vgg_node_inside_inference_mode_gives_trainable_graph(nst_pack, vgg_file):
    """ComfyUI runs nodes under torch.inference_mode(); the model must still work with autograd."""
    import torch

    cls = nst_pack.node_class_mappings["NeuralStyleLoadVGG"]
    with torch.inference_mode():
        out = cls.execute(weights=vgg_file.name, pooling="avg", convention="auto")
    model = out.args[0]
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    with torch.enable_grad():
        y = model(x, ["relu2_1"])["relu2_1"].pow(2).mean()
        (g,) = torch.autograd.grad(y, x)
    assert g.abs().sum() > 0


def test_missing_weights_file_is_a_clear_error(nst_pack):
    models = nst_pack.pack_module.nodes.models
    with pytest.raises(ValueError, match="not found in the vgg model folder"):
        models.load_model("no_such_weights.safetensors")
