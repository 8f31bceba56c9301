"""Test harness for running this node pack inside a real ComfyUI (0.3.75, see tools/comfyui_env.py).

Three ways in, from cheapest to most realistic:

* :func:`ui_to_api` -- convert a UI-format workflow (what the browser saves, and what
  ``example_workflows/*.json`` hold) to an API prompt, the way the frontend's ``graphToPrompt``
  does, using node definitions (``/object_info``).
* :class:`ComfyInProcess` -- ComfyUI loaded into the test process the way ``main.py`` loads it
  (``--cpu``, extra model paths, ``nodes.init_extra_nodes``) with our pack as a custom node;
  :meth:`ComfyInProcess.execute_prompt` runs a prompt through ComfyUI's own ``validate_prompt``
  and ``PromptExecutor``.
* :class:`ComfyServer` -- the real server in a subprocess on 127.0.0.1, with
  :class:`ComfyWebSocket` to follow a prompt's messages and binary preview frames.

Layout (:func:`make_layout`): a temporary base directory holding ``custom_nodes/`` with a
symlink ``comfyui-neural-style`` -> repository root, ``models/vgg/``, an extra-model-paths YAML
naming both, and per-instance ``output``/``input``/``temp``/``user`` directories, so nothing
is written into the repository.

Import-name caveat: ComfyUI's top-level modules are called ``nodes``, ``utils``, ``server``,
``execution``, ``app``, ``comfy``...; once ComfyUI is loaded in-process those names belong to
it (and ``nodes.py`` even puts ``ComfyUI/comfy`` first on ``sys.path``).  Our pack is loaded by
path, as ComfyUI loads every custom node; tests must not import the pack's ``nodes`` package
as a top-level ``nodes``.

What ComfyUI 0.3.75 does (read from its code; what the tests here rely on):

* Custom nodes: every entry of each ``custom_nodes`` folder is imported by path, a directory
  through its ``__init__.py``, under the module name "<full path with '.' -> '_x_'>", so a pack
  must use relative imports.  ``NODE_CLASS_MAPPINGS`` (V1) wins if present; otherwise
  ``comfy_entrypoint`` (sync or async) must return a ``comfy_api.latest.ComfyExtension``, whose
  async ``get_node_list()`` returns ``io.ComfyNode`` classes (``GET_SCHEMA()`` is called for
  each at load; ids clashing with stock nodes are skipped silently).  ``on_load()`` is never
  called.  Import or entrypoint errors are only logged: check ``ComfyInProcess.pack_loaded``.
* /workflow_templates globs ``<custom_nodes>/*/example_workflows/*.json`` and answers
  ``{folder name: [file stems]}``; the files are served (only for packs that imported) at
  ``/api/workflow_templates/<folder>/<file>``; the frontend shows ``<stem>.jpg`` as thumbnail.
* Every prompt runs under ``torch.inference_mode()``.  ``PromptExecutor.execute`` and
  ``validate_prompt`` need an asyncio loop (``execute`` calls ``asyncio.run``), so call the
  in-process helpers from plain (non-async) tests.
* Previews: ``comfy.utils.ProgressBar(n).update_absolute(i, n, (fmt, pil_image, max_size))``
  sends a JSON ``progress`` message and one binary frame, see :func:`decode_binary_frame`.
  The hook also raises ``InterruptProcessingException`` there when /interrupt was called.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-neural-style"
_TOOLS = REPO_ROOT / "tools"

# --------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------


def _load_tool(name: str):
    """Import tools/<name>.py by path (tools/ is not a package and must not shadow anything)."""
    key = f"_nst_tools_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, _TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


comfyui_env = _load_tool("comfyui_env")


def provision_comfyui() -> Path:
    """Provision ComfyUI for this interpreter (idempotent); returns its directory.

    Raises ``comfyui_env.ProvisioningError`` when that is impossible."""
    return comfyui_env.ensure_comfyui()


# --------------------------------------------------------------------------------------------
# Directory layout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IODirs:
    output: Path
    input: Path
    temp: Path  # ComfyUI's --temp-directory appends "temp" itself
    user: Path

    @classmethod
    def create(cls, base: Path) -> "IODirs":
        dirs = cls(output=base / "output", input=base / "input", temp=base / "tmp", user=base / "user")
        for d in (dirs.output, dirs.input, dirs.temp, dirs.user):
            d.mkdir(parents=True, exist_ok=True)
        return dirs


@dataclass(frozen=True)
class Layout:
    base: Path
    custom_nodes: Path
    pack_dir: Path  # the symlink ComfyUI imports our pack through
    vgg_dir: Path
    extra_model_paths: Path

    def io_dirs(self, name: str) -> IODirs:
        return IODirs.create(self.base / name)


def make_layout(base: Path, pack_root: Path = REPO_ROOT, pack_name: str = PACK_NAME) -> Layout:
    """Create custom_nodes/<pack_name> -> pack_root, models/vgg and the extra-model-paths YAML."""
    base = Path(base)
    custom_nodes = base / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / pack_name
    if not link.is_symlink():
        link.symlink_to(Path(pack_root).resolve(), target_is_directory=True)
    vgg_dir = base / "models" / "vgg"
    vgg_dir.mkdir(parents=True, exist_ok=True)
    yaml_path = base / "extra_model_paths.yaml"
    # Same format as ComfyUI's extra_model_paths.yaml.example: a named section whose keys are
    # folder names (custom_nodes is one of them) and whose values are paths.
    yaml_path.write_text(
        "nst_tests:\n"
        f"    custom_nodes: {json.dumps(str(custom_nodes))}\n"
        f"    vgg: {json.dumps(str(vgg_dir))}\n"
    )
    return Layout(base=base, custom_nodes=custom_nodes, pack_dir=link, vgg_dir=vgg_dir, extra_model_paths=yaml_path)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ComfyValidationError(AssertionError):
    """ComfyUI's validate_prompt rejected the prompt (what /prompt answers with HTTP 400)."""

    def __init__(self, error: dict, node_errors: dict):
        self.error = error or {}
        self.node_errors = node_errors or {}
        lines = [f"{self.error.get('message', 'invalid prompt')}: {self.error.get('details', '')}".rstrip(": ")]
        for node_id, info in self.node_errors.items():
            for e in info.get("errors", []):
                lines.append(f"  node {node_id} ({info.get('class_type')}): {e.get('message')}: {e.get('details')}")
        super().__init__("\n".join(lines))


class ComfyExecutionError(AssertionError):
    """Execution failed or was interrupted; ``details`` is ComfyUI's execution_error message."""

    def __init__(self, event: str, details: dict):
        self.event = event
        self.details = details or {}
        if event == "execution_interrupted":
            msg = f"execution interrupted at node {self.details.get('node_id')} ({self.details.get('node_type')})"
        else:
            tb = "".join(self.details.get("traceback") or [])
            msg = (f"node {self.details.get('node_id')} ({self.details.get('node_type')}) raised "
                   f"{self.details.get('exception_type')}: {self.details.get('exception_message')}\n{tb}")
        super().__init__(msg)


# --------------------------------------------------------------------------------------------
# UI workflow -> API prompt
# --------------------------------------------------------------------------------------------

# Input types the frontend (comfyui-frontend-package 1.32.9) turns into widgets: its
# ComfyWidgets table plus the widgets its bundled extensions register.
DEFAULT_WIDGET_TYPES = frozenset({
    "INT", "FLOAT", "BOOLEAN", "STRING", "MARKDOWN", "COMBO", "IMAGEUPLOAD", "COLOR",
    "IMAGECOMPARE", "CHART", "GALLERIA", "TEXTAREA",
    "AUDIOUPLOAD", "AUDIO_RECORD", "AUDIO_UI", "LOAD_3D", "PREVIEW_3D", "WEBCAM",
})
# Frontend-only node types: never sent to the backend.
VIRTUAL_NODE_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
MODE_ALWAYS, MODE_NEVER, MODE_BYPASS = 0, 2, 4
_MEDIA_UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")


@dataclass(frozen=True)
class Widget:
    name: str
    serialize: bool = True  # False: UI-only widget (control_after_generate, upload button...)


def _spec_type(spec) -> str:
    t = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(t, (list, tuple)):
        return "COMBO"
    return str(t)


def _spec_options(spec) -> dict:
    if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1]
    return {}


def node_widgets(node_def: dict, widget_types: Iterable[str] = DEFAULT_WIDGET_TYPES) -> list[Widget]:
    """The widgets the frontend creates for a node definition, in order.

    Mirrors the frontend: inputs ordered by ``input_order`` (required, then optional); an input
    gets a widget when its type (or ``widgetType``) is a widget type and it is not
    ``forceInput``; an INT gets a ``control_after_generate`` widget after it when its options
    say so or, without that option, when it is named ``seed``/``noise_seed``; a COMBO with
    ``control_after_generate`` gets that widget plus ``control_filter_list``; a required
    image/video upload COMBO makes the Comfy.UploadImage extension append an ``upload`` widget.
    """
    widget_types = set(widget_types)
    inputs = node_def.get("input") or {}
    required = inputs.get("required") or {}
    optional = inputs.get("optional") or {}
    order = node_def.get("input_order") or {}
    specs: list[tuple[str, Any]] = []
    for section, names in ((required, order.get("required")), (optional, order.get("optional"))):
        for name in (names if names is not None else list(section)):
            if name in section:
                specs.append((name, section[name]))
    seen = {n for n, _ in specs}
    for section in (required, optional):  # anything input_order forgot, as the frontend does
        specs += [(n, s) for n, s in section.items() if n not in seen]
        seen |= set(section)
    # Comfy.UploadImage: the first required media-upload COMBO gets an IMAGEUPLOAD "upload" input.
    for name, spec in required.items():
        opts = _spec_options(spec)
        if _spec_type(spec) == "COMBO" and any(opts.get(k) is True for k in _MEDIA_UPLOAD_OPTIONS):
            if "upload" not in seen:
                specs.append(("upload", ["IMAGEUPLOAD", {**opts, "imageInputName": name}]))
            break

    widgets: list[Widget] = []
    for name, spec in specs:
        typ = _spec_type(spec)
        opts = _spec_options(spec)
        wtype = opts.get("widgetType") or typ
        if wtype not in widget_types or opts.get("forceInput"):
            continue
        if wtype == "IMAGEUPLOAD":
            widgets.append(Widget(name, serialize=False))
            continue
        widgets.append(Widget(name))
        if wtype == "INT":
            control = opts.get("control_after_generate")
            if control is None:
                control = name in ("seed", "noise_seed")
            if control:
                widgets.append(Widget("control_after_generate", serialize=False))
        elif wtype == "COMBO" and opts.get("control_after_generate"):
            widgets.append(Widget("control_after_generate", serialize=False))
            widgets.append(Widget("control_filter_list", serialize=False))
    return widgets


def _links_by_id(ui: dict) -> dict[int, tuple]:
    out = {}
    for link in ui.get("links") or []:
        if isinstance(link, dict):
            out[link["id"]] = (link["origin_id"], link["origin_slot"], link.get("target_id"),
                               link.get("target_slot"), link.get("type"))
        else:
            lid, origin_id, origin_slot, target_id, target_slot, typ = list(link)[:6]
            out[lid] = (origin_id, origin_slot, target_id, target_slot, typ)
    return out


def _types_match(a, b) -> bool:
    if a in (None, "*") or b in (None, "*"):
        return True
    sa, sb = set(str(a).split(",")), set(str(b).split(","))
    return bool(sa & sb)


def ui_to_api(ui_workflow: dict, object_info: dict, *, widget_types: Iterable[str] = DEFAULT_WIDGET_TYPES,
              strict: bool = True) -> dict:
    """Convert a UI-format workflow to an API prompt, as the frontend's ``graphToPrompt`` does.

    * ``widgets_values`` are matched positionally to :func:`node_widgets` (so the extra
      ``control_after_generate``/upload values the UI stores are skipped), or by name when
      they are a dict; list values are wrapped as ``{"__value__": [...]}``.
    * Linked inputs (sockets, and widgets converted to sockets) become ``[origin_id, slot]``,
      resolved through ``Reroute`` nodes, bypassed nodes (mode 4: first input of the output's
      type) and ``PrimitiveNode`` (its value is inlined); links to muted nodes (mode 2) are
      dropped.
    * Muted/bypassed nodes and frontend-only nodes (Note, MarkdownNote, Reroute,
      PrimitiveNode) are left out; hidden inputs are never written (the executor fills them).
    * ``strict``: a node whose ``widgets_values`` count differs from its widget count raises
      ``ValueError`` (usually a sign that the node definition changed).
    Subgraphs and group nodes are not supported (``NotImplementedError``).
    """
    nodes_by_id = {n["id"]: n for n in ui_workflow.get("nodes", [])}
    links = _links_by_id(ui_workflow)
    subgraph_ids = {sg.get("id") for sg in (ui_workflow.get("definitions") or {}).get("subgraphs", [])}

    def resolve(link_id, depth=0):
        """-> ("link", [origin, slot]) | ("value", v) | None"""
        if link_id is None or link_id not in links or depth > 100:
            return None
        origin_id, origin_slot, _t_id, _t_slot, link_type = links[link_id]
        origin = nodes_by_id.get(origin_id)
        if origin is None:
            return None
        otype = origin.get("type")
        if otype == "Reroute":
            ins = origin.get("inputs") or []
            return resolve(ins[0].get("link") if ins else None, depth + 1)
        if otype == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            return ("value", values[0]) if values else None
        mode = origin.get("mode", MODE_ALWAYS)
        if mode == MODE_NEVER:
            return None
        if mode == MODE_BYPASS:
            outs = origin.get("outputs") or []
            out_type = outs[origin_slot].get("type") if origin_slot < len(outs) else link_type
            ins = origin.get("inputs") or []
            candidates = []
            if origin_slot < len(ins) and _types_match(ins[origin_slot].get("type"), out_type):
                candidates.append(ins[origin_slot])
            candidates += [i for i in ins if _types_match(i.get("type"), out_type) and i not in candidates]
            for cand in candidates:
                if cand.get("link") is not None:
                    return resolve(cand["link"], depth + 1)
            return None
        if otype in VIRTUAL_NODE_TYPES:
            return None
        return ("link", [str(origin_id), int(origin_slot)])

    prompt: dict[str, dict] = {}
    for node in sorted(nodes_by_id.values(), key=lambda n: n["id"]):
        ntype = node.get("type")
        if ntype in VIRTUAL_NODE_TYPES or node.get("mode", MODE_ALWAYS) in (MODE_NEVER, MODE_BYPASS):
            continue
        if ntype in subgraph_ids:
            raise NotImplementedError(f"node {node['id']}: subgraphs are not supported ({ntype})")
        if ntype not in object_info:
            raise KeyError(f"node {node['id']}: unknown node type {ntype!r} (not in object_info)")
        node_def = object_info[ntype]
        widgets = node_widgets(node_def, widget_types)
        values = node.get("widgets_values")
        inputs: dict[str, Any] = {}
        if isinstance(values, dict):
            for w in widgets:
                if w.serialize and w.name in values:
                    inputs[w.name] = values[w.name]
        elif values is not None:
            if strict and len(values) != len(widgets):
                raise ValueError(
                    f"node {node['id']} ({ntype}): {len(values)} widgets_values {values!r} but the "
                    f"definition gives {len(widgets)} widgets {[w.name for w in widgets]}")
            for w, v in zip(widgets, values):
                if w.serialize:
                    inputs[w.name] = v
        for k, v in list(inputs.items()):
            if isinstance(v, list):
                inputs[k] = {"__value__": v}
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            name = slot.get("name") or (slot.get("widget") or {}).get("name")
            resolved = resolve(slot["link"])
            if resolved is None:
                inputs.pop(name, None)
            elif resolved[0] == "value":
                v = resolved[1]
                inputs[name] = {"__value__": v} if isinstance(v, list) else v
            else:
                inputs[name] = resolved[1]
        title = node.get("title") or node_def.get("display_name") or ntype
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": ntype, "_meta": {"title": title}}
    # As graphToPrompt: drop links to nodes that are not part of the prompt.
    for entry in prompt.values():
        for k, v in list(entry["inputs"].items()):
            if isinstance(v, list) and len(v) == 2 and v[0] not in prompt:
                del entry["inputs"][k]
    return prompt


# --------------------------------------------------------------------------------------------
# In-process ComfyUI
# --------------------------------------------------------------------------------------------


@dataclass
class Preview:
    """A preview image a node sent through ``comfy.utils.ProgressBar.update_absolute``."""
    image_format: str  # "JPEG" or "PNG"
    image: Any  # PIL.Image.Image, as the node passed it (not yet resized)
    max_size: int | None
    metadata: dict | None  # node_id, prompt_id, display_node_id, ... (new protocol only)

    def sent_image(self):
        """The image as the server would put it on the websocket: with a max_size, server.py
        resizes it with ``ImageOps.contain(image, (max_size, max_size))``, which *enlarges*
        small images too (a 48x36 preview with max_size 512 arrives as 512x384)."""
        if self.max_size is None:
            return self.image
        from PIL import Image, ImageOps

        return ImageOps.contain(self.image, (self.max_size, self.max_size), Image.Resampling.BILINEAR)


@dataclass
class Validation:
    valid: bool
    error: dict | None
    outputs: list  # output node ids that passed validation (what gets executed)
    node_errors: dict
    prompt: dict  # the prompt with values converted as validate_prompt does


@dataclass
class PromptResult:
    prompt_id: str
    ui_outputs: dict  # node id -> the "ui" dict the node returned (history "outputs")
    messages: list  # (event, data) as sent to the client, in order
    previews: list  # Preview
    node_errors: dict
    executor: Any
    comfy: "ComfyInProcess"

    def events(self, name: str) -> list[dict]:
        return [d for e, d in self.messages if e == name]

    @property
    def progress(self) -> list[dict]:
        return self.events("progress")

    def node_outputs(self, node_id: str | int) -> list:
        """The node's outputs from the executor's cache: one list (over batch/list items) per
        output slot, e.g. ``node_outputs("3")[0][0]`` is the first IMAGE tensor."""
        entry = self.executor.caches.outputs.get(str(node_id))
        if entry is None:
            raise KeyError(f"no cached outputs for node {node_id}")
        return entry.outputs

    def images(self, node_id: str | int | None = None) -> list:
        """PIL images saved by SaveImage/PreviewImage-like nodes (loaded from disk)."""
        from PIL import Image
        import folder_paths

        out = []
        for nid, ui in self.ui_outputs.items():
            if node_id is not None and str(nid) != str(node_id):
                continue
            for item in ui.get("images", []) or []:
                base = folder_paths.get_directory_by_type(item.get("type", "output"))
                path = os.path.join(base, item.get("subfolder", ""), item["filename"])
                with Image.open(path) as im:
                    im.load()
                    out.append(im.copy())
        return out


def _node_info(nodes_module, node_class: str) -> dict:
    """Same as server.py's PromptServer node_info() (a closure there, so it is copied here)."""
    from comfy_api.internal import _ComfyNodeInternal

    obj_class = nodes_module.NODE_CLASS_MAPPINGS[node_class]
    if issubclass(obj_class, _ComfyNodeInternal):
        return obj_class.GET_NODE_INFO_V1()
    info = {}
    info['input'] = obj_class.INPUT_TYPES()
    info['input_order'] = {key: list(value.keys()) for (key, value) in obj_class.INPUT_TYPES().items()}
    info['output'] = obj_class.RETURN_TYPES
    info['output_is_list'] = obj_class.OUTPUT_IS_LIST if hasattr(obj_class, 'OUTPUT_IS_LIST') else [False] * len(obj_class.RETURN_TYPES)
    info['output_name'] = obj_class.RETURN_NAMES if hasattr(obj_class, 'RETURN_NAMES') else info['output']
    info['name'] = node_class
    info['display_name'] = nodes_module.NODE_DISPLAY_NAME_MAPPINGS[node_class] if node_class in nodes_module.NODE_DISPLAY_NAME_MAPPINGS.keys() else node_class
    info['description'] = obj_class.DESCRIPTION if hasattr(obj_class, 'DESCRIPTION') else ''
    info['python_module'] = getattr(obj_class, "RELATIVE_PYTHON_MODULE", "nodes")
    info['category'] = 'sd'
    if hasattr(obj_class, 'OUTPUT_NODE') and obj_class.OUTPUT_NODE == True:  # noqa: E712 (as upstream)
        info['output_node'] = True
    else:
        info['output_node'] = False
    if hasattr(obj_class, 'CATEGORY'):
        info['category'] = obj_class.CATEGORY
    if hasattr(obj_class, 'OUTPUT_TOOLTIPS'):
        info['output_tooltips'] = obj_class.OUTPUT_TOOLTIPS
    if getattr(obj_class, "DEPRECATED", False):
        info['deprecated'] = True
    if getattr(obj_class, "EXPERIMENTAL", False):
        info['experimental'] = True
    if hasattr(obj_class, 'API_NODE'):
        info['api_node'] = obj_class.API_NODE
    return info


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record):
        try:
            self.records.append(self.format(record))
        except Exception:  # pragma: no cover
            pass


_INPROCESS: "ComfyInProcess | None" = None
_INPROCESS_LOCK = threading.Lock()
_COMFY_TOP_LEVEL = ("nodes", "server", "execution", "folder_paths", "utils", "app", "comfy",
                    "comfy_execution", "comfy_api", "latent_preview", "node_helpers", "protocol")


class ComfyInProcess:
    """ComfyUI loaded into this process, with our pack (and the stock nodes) registered.

    Create it with :func:`load_comfyui_inprocess`; there is one per process (ComfyUI keeps its
    state in module globals)."""

    def __init__(self, comfyui_dir: Path, layout: Layout, io: IODirs, init_api_nodes: bool):
        self.comfyui_dir = Path(comfyui_dir)
        self.layout = layout
        self.io = io
        self._setup(init_api_nodes)

    # -- loading ---------------------------------------------------------------------------
    def _check_module_names(self):
        d = str(self.comfyui_dir.resolve())
        tests_dir = str(REPO_ROOT / "tests")
        for name in _COMFY_TOP_LEVEL:
            mod = sys.modules.get(name)
            if mod is None:
                continue
            where = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", []) or []), None)
            if where is not None and os.path.realpath(where).startswith(d):
                continue
            if where is None or os.path.realpath(where).startswith(tests_dir):
                # pytest's importlib import mode names tests/comfy/* "comfy.<module>" and
                # registers tests/comfy as a namespace package "comfy".  The test modules are
                # already imported; drop the placeholder so ComfyUI's own comfy package loads.
                del sys.modules[name]
                continue
            raise RuntimeError(
                f"module {name!r} is already imported from {where}, not from ComfyUI at {d}: "
                "ComfyUI needs its own top-level modules of that name (import the pack's "
                "modules through the pack, never as top-level names)")

    def _setup(self, init_api_nodes: bool):
        comfyui_env.install_torchvision_shim()
        self._check_module_names()
        d = str(self.comfyui_dir)
        if d not in sys.path:
            sys.path.insert(0, d)

        # What main.py does, in main.py's order, minus argv parsing, logging setup (it swaps
        # sys.stdout/sys.stderr) and the HTTP listener.
        import comfy.options  # noqa: F401  (args parsing stays disabled: defaults + our settings)
        from comfy.cli_args import args

        args.cpu = True
        args.disable_auto_launch = True
        args.output_directory = str(self.io.output)
        args.input_directory = str(self.io.input)
        args.temp_directory = str(self.io.temp)
        args.user_directory = str(self.io.user)
        args.extra_model_paths_config = [[str(self.layout.extra_model_paths)]]
        args.disable_api_nodes = not init_api_nodes
        args.database_url = "sqlite:///:memory:"

        import folder_paths
        import utils.extra_config  # before nodes.py puts ComfyUI/comfy (with its utils.py) first on sys.path
        from comfy_execution.progress import get_progress_state
        from comfy_execution.utils import get_executing_context
        from comfy_api import feature_flags

        self._apply_custom_paths(folder_paths, utils.extra_config, args)
        self._execute_prestartup_scripts(folder_paths)

        import comfy.utils
        import execution
        import server
        from protocol import BinaryEventTypes
        import nodes
        import comfy.model_management
        import hook_breaker_ac10a0

        folder_paths.set_temp_directory(os.path.join(os.path.abspath(args.temp_directory), "temp"))

        self.args = args
        self.folder_paths = folder_paths
        self.execution = execution
        self.nodes = nodes
        self.server_module = server
        self.BinaryEventTypes = BinaryEventTypes

        self.loop = asyncio.new_event_loop()
        self.server = _make_recording_server(server, self.loop)

        capture = _LogCapture()
        capture.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(capture)
        root.setLevel(min(old_level or logging.WARNING, logging.INFO))
        self.custom_node_results: dict[str, bool] = {}
        original_load = nodes.load_custom_node

        async def recording_load(module_path, ignore=set(), module_parent="custom_nodes"):
            ok = await original_load(module_path, ignore, module_parent)
            if module_parent == "custom_nodes":
                self.custom_node_results[module_path] = ok
            return ok

        nodes.load_custom_node = recording_load
        try:
            hook_breaker_ac10a0.save_functions()
            self.loop.run_until_complete(nodes.init_extra_nodes(
                init_custom_nodes=(not args.disable_all_custom_nodes) or len(args.whitelist_custom_nodes) > 0,
                init_api_nodes=not args.disable_api_nodes))
            hook_breaker_ac10a0.restore_functions()
        finally:
            nodes.load_custom_node = original_load
            root.removeHandler(capture)
            root.setLevel(old_level)
        self.startup_log = capture.records
        self._hijack_progress(comfy.utils, comfy.model_management, get_progress_state,
                              get_executing_context, feature_flags)

    @staticmethod
    def _apply_custom_paths(folder_paths, extra_config, args):
        """main.py's apply_custom_paths()."""
        default_yaml = os.path.join(os.path.dirname(os.path.realpath(folder_paths.__file__)), "extra_model_paths.yaml")
        if os.path.isfile(default_yaml):
            extra_config.load_extra_path_config(default_yaml)
        for config_path in (p for group in (args.extra_model_paths_config or []) for p in group):
            extra_config.load_extra_path_config(config_path)
        folder_paths.set_output_directory(os.path.abspath(args.output_directory))
        out = folder_paths.get_output_directory()
        for name in ("checkpoints", "clip", "vae", "diffusion_models", "loras"):
            folder_paths.add_model_folder_path(name, os.path.join(out, name))
        folder_paths.set_input_directory(os.path.abspath(args.input_directory))
        folder_paths.set_user_directory(os.path.abspath(args.user_directory))

    @staticmethod
    def _execute_prestartup_scripts(folder_paths):
        """main.py's execute_prestartup_script() (without the timing report)."""
        for custom_node_path in folder_paths.get_folder_paths("custom_nodes"):
            if not os.path.isdir(custom_node_path):
                continue
            for possible_module in os.listdir(custom_node_path):
                module_path = os.path.join(custom_node_path, possible_module)
                if os.path.isfile(module_path) or module_path.endswith(".disabled") or possible_module == "__pycache__":
                    continue
                script_path = os.path.join(module_path, "prestartup_script.py")
                if os.path.exists(script_path):
                    spec = importlib.util.spec_from_file_location(os.path.splitext(script_path)[0], script_path)
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)

    def _hijack_progress(self, comfy_utils, model_management, get_progress_state, get_executing_context, feature_flags):
        """main.py's hijack_progress(): the global ProgressBar hook."""
        server_instance = self.server
        BinaryEventTypes = self.BinaryEventTypes

        def hook(value, total, preview_image, prompt_id=None, node_id=None):
            executing_context = get_executing_context()
            if prompt_id is None and executing_context is not None:
                prompt_id = executing_context.prompt_id
            if node_id is None and executing_context is not None:
                node_id = executing_context.node_id
            model_management.throw_exception_if_processing_interrupted()
            if prompt_id is None:
                prompt_id = server_instance.last_prompt_id
            if node_id is None:
                node_id = server_instance.last_node_id
            progress = {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}
            get_progress_state().update_progress(node_id, value, total, preview_image)
            server_instance.send_sync("progress", progress, server_instance.client_id)
            if preview_image is not None:
                if not feature_flags.supports_feature(server_instance.sockets_metadata, server_instance.client_id,
                                                      "supports_preview_metadata"):
                    server_instance.send_sync(BinaryEventTypes.UNENCODED_PREVIEW_IMAGE, preview_image,
                                              server_instance.client_id)

        comfy_utils.set_progress_bar_global_hook(hook)

    # -- pack and node info ----------------------------------------------------------------
    @property
    def node_class_mappings(self) -> dict:
        return self.nodes.NODE_CLASS_MAPPINGS

    @property
    def display_name_mappings(self) -> dict:
        return self.nodes.NODE_DISPLAY_NAME_MAPPINGS

    @property
    def pack_loaded(self) -> bool:
        return bool(self.custom_node_results.get(str(self.layout.pack_dir)))

    @property
    def pack_module(self):
        """Our pack's module as ComfyUI imported it (its name is the module path)."""
        return sys.modules.get(str(self.layout.pack_dir).replace(".", "_x_"))

    def pack_node_names(self) -> list[str]:
        prefix = f"custom_nodes.{PACK_NAME}"
        return sorted(name for name, cls in self.node_class_mappings.items()
                      if getattr(cls, "RELATIVE_PYTHON_MODULE", None) == prefix)

    def pack_load_report(self) -> str:
        """Why the pack did (not) load: ComfyUI's own log lines from start-up."""
        key = str(self.layout.pack_dir)
        lines = []
        for i, record in enumerate(self.startup_log):
            if key in record:
                prev = self.startup_log[i - 1] if i else ""
                if "Traceback" in prev and prev not in lines:
                    lines.append(prev)
                lines.append(record)
        status = "loaded" if self.pack_loaded else (
            "FAILED to load" if key in self.custom_node_results else "not found by ComfyUI")
        return f"{PACK_NAME} ({key} -> {os.path.realpath(key)}): {status}\n" + "\n".join(lines)

    def node_info(self, node_class: str) -> dict:
        return json.loads(json.dumps(_node_info(self.nodes, node_class)))

    def object_info(self) -> dict:
        """What GET /object_info returns (computed the same way, JSON round-tripped)."""
        out = {}
        with self.folder_paths.cache_helper:
            for name in self.nodes.NODE_CLASS_MAPPINGS:
                out[name] = _node_info(self.nodes, name)
        return json.loads(json.dumps(out))

    # -- running prompts -------------------------------------------------------------------
    def validate_prompt(self, api_prompt: dict, prompt_id: str | None = None,
                        partial_execution_targets: list[str] | None = None) -> "Validation":
        """ComfyUI's execution.validate_prompt, run on a copy of the prompt (it converts values
        in place, as /prompt does before queueing)."""
        prompt = copy.deepcopy(api_prompt)
        valid, error, outputs, node_errors = asyncio.run(self.execution.validate_prompt(
            prompt_id or str(uuid.uuid4()), prompt, partial_execution_targets))
        return Validation(valid, error, outputs, node_errors, prompt)

    def run_ui_workflow(self, ui_workflow: dict, **kwargs) -> PromptResult:
        """:func:`ui_to_api` against this ComfyUI's node definitions, then :meth:`execute_prompt`."""
        return self.execute_prompt(ui_to_api(ui_workflow, self.object_info()), **kwargs)

    def new_executor(self):
        return self.execution.PromptExecutor(self.server, cache_type=self.execution.CacheType.CLASSIC,
                                             cache_args={"lru": 0, "ram": 0})

    def execute_prompt(self, api_prompt: dict, *, extra_data: dict | None = None, client_id: str = "harness",
                       executor=None, strict: bool = True, prompt_id: str | None = None) -> PromptResult:
        """Validate and execute an API prompt like the server's /prompt + prompt worker.

        Raises :class:`ComfyValidationError` when validation fails (``strict``: also when only
        some outputs failed), :class:`ComfyExecutionError` on an execution error/interrupt.
        Uses a fresh executor (empty caches) unless ``executor`` is given.  Must not be called
        from a running asyncio loop (PromptExecutor.execute uses asyncio.run)."""
        prompt_id = prompt_id or str(uuid.uuid4())
        v = self.validate_prompt(api_prompt, prompt_id)
        if not v.valid or (strict and v.node_errors):
            raise ComfyValidationError(v.error or {"message": "Some outputs failed validation"}, v.node_errors)
        prompt, outputs, node_errors = v.prompt, v.outputs, v.node_errors
        executor = executor or self.new_executor()
        data = dict(extra_data or {})
        data.setdefault("client_id", client_id)
        start = self.server.mark()
        self.server.last_prompt_id = prompt_id
        executor.execute(prompt, prompt_id, data, outputs)
        if self.server.client_id is not None:
            self.server.send_sync("executing", {"node": None, "prompt_id": prompt_id}, self.server.client_id)
        messages, previews = self.server.since(start)
        for event, payload in messages:
            if event in ("execution_error", "execution_interrupted") and payload.get("prompt_id") == prompt_id:
                raise ComfyExecutionError(event, payload)
        for event, payload in executor.status_messages:
            if event in ("execution_error", "execution_interrupted"):
                raise ComfyExecutionError(event, payload)
        return PromptResult(prompt_id=prompt_id, ui_outputs=executor.history_result.get("outputs", {}),
                            messages=messages, previews=previews, node_errors=node_errors,
                            executor=executor, comfy=self)


def _make_recording_server(server_module, loop):
    """A real PromptServer (custom nodes may use PromptServer.instance and its routes at import)
    whose send_sync records messages instead of queueing them for websockets."""

    class RecordingPromptServer(server_module.PromptServer):
        def __init__(self, loop):
            super().__init__(loop)
            self.last_prompt_id = None
            self._record_lock = threading.Lock()
            self.recorded: list[tuple[Any, Any, Any]] = []
            # Behave like the current frontend, which negotiates preview metadata.
            self.sockets_metadata = _ClientMetadata()

        def send_sync(self, event, data, sid=None):
            with self._record_lock:
                self.recorded.append((event, data, sid))

        def mark(self) -> int:
            with self._record_lock:
                return len(self.recorded)

        def since(self, start: int):
            BinaryEventTypes = sys.modules["protocol"].BinaryEventTypes
            with self._record_lock:
                items = self.recorded[start:]
            messages, previews = [], []
            for event, data, _sid in items:
                if event == BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA:
                    (fmt, image, max_size), metadata = data
                    previews.append(Preview(fmt, image, max_size, metadata))
                elif event == BinaryEventTypes.UNENCODED_PREVIEW_IMAGE:
                    fmt, image, max_size = data
                    previews.append(Preview(fmt, image, max_size, None))
                else:
                    messages.append((event, data))
            return messages, previews

    return RecordingPromptServer(loop)


class _ClientMetadata(dict):
    """sockets_metadata in which every client advertises supports_preview_metadata."""

    def __contains__(self, sid):
        return True

    def __getitem__(self, sid):
        return {"feature_flags": {"supports_preview_metadata": True}}

    def get(self, sid, default=None):
        return self[sid]


def load_comfyui_inprocess(layout: Layout, io: IODirs, *, init_api_nodes: bool = True) -> ComfyInProcess:
    """Provision (if needed) and load ComfyUI into this process, once; later calls return the
    same instance (the layout/io of the first call win)."""
    global _INPROCESS
    with _INPROCESS_LOCK:
        if _INPROCESS is None:
            directory = provision_comfyui()
            _INPROCESS = ComfyInProcess(directory, layout, io, init_api_nodes)
        return _INPROCESS


def current_comfy() -> ComfyInProcess:
    if _INPROCESS is None:
        raise RuntimeError("ComfyUI is not loaded in-process yet (use the `comfy` fixture)")
    return _INPROCESS


def execute_prompt(api_prompt: dict, **kwargs) -> PromptResult:
    """:meth:`ComfyInProcess.execute_prompt` on the process's in-process ComfyUI."""
    return current_comfy().execute_prompt(api_prompt, **kwargs)


# --------------------------------------------------------------------------------------------
# Server subprocess and websocket client
# --------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class HTTPResult:
    status: int
    body: Any  # parsed JSON when the response is JSON, else bytes


class ComfyClient:
    """HTTP (and websocket) client for a running ComfyUI server."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, path: str, payload: Any = None, timeout: float = 30) -> HTTPResult:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        body: Any = raw
        if "json" in ctype:
            body = json.loads(raw.decode() or "null")
        return HTTPResult(status, body)

    def get(self, path: str, timeout: float = 30) -> HTTPResult:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, payload: Any, timeout: float = 30) -> HTTPResult:
        return self.request("POST", path, payload, timeout=timeout)

    def object_info(self) -> dict:
        r = self.get("/object_info", timeout=60)
        assert r.status == 200, r
        return r.body

    def queue_prompt(self, api_prompt: dict, client_id: str | None = None, **fields) -> HTTPResult:
        """POST /prompt.  200: body has prompt_id (and node_errors); 400: error and node_errors."""
        payload = {"prompt": api_prompt, **fields}
        if client_id is not None:
            payload["client_id"] = client_id
        return self.post("/prompt", payload)

    def websocket(self, client_id: str | None = None, supports_preview_metadata: bool = True) -> "ComfyWebSocket":
        return ComfyWebSocket(self.base_url, client_id=client_id,
                              supports_preview_metadata=supports_preview_metadata)

    def run_prompt(self, api_prompt: dict, timeout: float = 120, supports_preview_metadata: bool = True) -> "PromptRun":
        """Queue a prompt with a websocket listening and collect everything until it finishes.

        Raises :class:`ComfyValidationError` when /prompt rejects it (HTTP 400)."""
        with self.websocket(supports_preview_metadata=supports_preview_metadata) as ws:
            r = self.queue_prompt(api_prompt, client_id=ws.client_id)
            if r.status != 200:
                body = r.body if isinstance(r.body, dict) else {}
                raise ComfyValidationError(body.get("error") or {"message": f"HTTP {r.status}"}, body.get("node_errors"))
            return ws.collect(r.body["prompt_id"], timeout=timeout)


    def run_ui_workflow(self, ui_workflow: dict, timeout: float = 120, **kwargs) -> "PromptRun":
        """:func:`ui_to_api` against the server's /object_info, then :meth:`run_prompt`."""
        return self.run_prompt(ui_to_api(ui_workflow, self.object_info()), timeout=timeout, **kwargs)


class ComfyServer(ComfyClient):
    """ComfyUI's server in a subprocess (tools/run_comfyui.py), bound to 127.0.0.1 only."""

    HOST = "127.0.0.1"

    def __init__(self, layout: Layout, io: IODirs, *, port: int | None = None, extra_args: Iterable[str] = (),
                 python: str = sys.executable):
        self.layout = layout
        self.io = io
        self.port = port or free_port(self.HOST)
        super().__init__(f"http://{self.HOST}:{self.port}")
        self.log_path = io.output.parent / "server.log"
        self.extra_args = list(extra_args)
        self.python = python
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def command(self) -> list[str]:
        return [self.python, str(_TOOLS / "run_comfyui.py"), "--cpu", "--listen", self.HOST,
                "--port", str(self.port), "--disable-auto-launch",
                "--extra-model-paths-config", str(self.layout.extra_model_paths),
                "--output-directory", str(self.io.output), "--input-directory", str(self.io.input),
                "--temp-directory", str(self.io.temp), "--user-directory", str(self.io.user),
                "--database-url", "sqlite:///:memory:", *self.extra_args]

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        """Start the server and wait (at most ``timeout`` s) until /object_info answers."""
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1")
        self.proc = subprocess.Popen(self.command(), cwd=str(self.io.output.parent), env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"ComfyUI server exited with {code} during start-up:\n{self.log_tail()}")
            try:
                r = self.get("/object_info", timeout=30)
                if r.status == 200 and isinstance(r.body, dict) and r.body:
                    return self
                last_error = f"HTTP {r.status}"
            except (OSError, urllib.error.URLError) as e:
                last_error = repr(e)
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI server did not answer /object_info within {timeout:.0f}s "
                           f"({last_error}):\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate (then kill) the server process."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 8000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


@dataclass
class BinaryFrame:
    """A decoded binary websocket message (server.py's encode_bytes: 4-byte big-endian event
    type, then the payload)."""
    event: int  # protocol.BinaryEventTypes: 1 PREVIEW_IMAGE, 3 TEXT, 4 PREVIEW_IMAGE_WITH_METADATA
    raw: bytes
    image_type: str | None = None  # "image/jpeg" / "image/png" for previews
    image_bytes: bytes | None = None
    metadata: dict | None = None  # event 4 only
    node_id: str | None = None  # event 3 only
    text: str | None = None  # event 3 only

    def image(self):
        from io import BytesIO
        from PIL import Image

        with Image.open(BytesIO(self.image_bytes)) as im:
            im.load()
            return im.copy()


def decode_binary_frame(data: bytes) -> BinaryFrame:
    event = struct.unpack(">I", data[:4])[0]
    payload = data[4:]
    frame = BinaryFrame(event=event, raw=data)
    if event == 1:  # PREVIEW_IMAGE: 4-byte image type (1 JPEG, 2 PNG) + image
        kind = struct.unpack(">I", payload[:4])[0]
        frame.image_type = {1: "image/jpeg", 2: "image/png"}.get(kind, f"unknown/{kind}")
        frame.image_bytes = payload[4:]
    elif event == 4:  # PREVIEW_IMAGE_WITH_METADATA: 4-byte length + JSON metadata + image
        n = struct.unpack(">I", payload[:4])[0]
        frame.metadata = json.loads(payload[4:4 + n].decode())
        frame.image_type = frame.metadata.get("image_type")
        frame.image_bytes = payload[4 + n:]
    elif event == 3:  # TEXT: 4-byte node id length + node id + text
        n = struct.unpack(">I", payload[:4])[0]
        frame.node_id = payload[4:4 + n].decode()
        frame.text = payload[4 + n:].decode("utf-8", "replace")
    return frame


@dataclass
class PromptRun:
    """What the websocket saw for one prompt."""
    prompt_id: str
    messages: list = field(default_factory=list)  # {"type":..., "data":...} JSON messages, in order
    frames: list = field(default_factory=list)  # BinaryFrame, in order
    status: str = "unknown"  # success | error | interrupted | timeout

    def events(self, name: str) -> list[dict]:
        return [m["data"] for m in self.messages if m.get("type") == name]

    @property
    def previews(self) -> list[BinaryFrame]:
        return [f for f in self.frames if f.event in (1, 4)]

    @property
    def error(self) -> dict | None:
        errs = self.events("execution_error") or self.events("execution_interrupted")
        return errs[0] if errs else None


class ComfyWebSocket:
    """Synchronous websocket client for ComfyUI's /ws (aiohttp on a private event loop).

    Connect *before* queueing a prompt, and queue it with this client's ``client_id``: ComfyUI
    sends a prompt's progress only to the client id given in the /prompt request.  With
    ``supports_preview_metadata`` the client announces the feature flag the current frontend
    announces, and previews arrive as event 4 (with node/prompt ids); without it as legacy
    event 1 frames."""

    def __init__(self, base_url: str, client_id: str | None = None, supports_preview_metadata: bool = True,
                 connect_timeout: float = 30):
        import aiohttp

        self._aiohttp = aiohttp
        self.client_id = client_id or uuid.uuid4().hex
        self.url = base_url.replace("http://", "ws://", 1) + f"/ws?clientId={self.client_id}"
        self._loop = asyncio.new_event_loop()
        self._session = None
        self._ws = None
        self.backlog: list = []  # messages received before collect() was called
        self._run(self._connect(supports_preview_metadata, connect_timeout))

    def _run(self, coro):
        return self._loop.run_until_complete(coro)

    async def _connect(self, supports_preview_metadata, timeout):
        self._session = self._aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, timeout=self._aiohttp.ClientWSTimeout(ws_close=10)
                                                  if hasattr(self._aiohttp, "ClientWSTimeout") else 10,
                                                  max_msg_size=0)
        if supports_preview_metadata:
            await self._ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        # Wait for the server's answer (status, then feature_flags) so that the flags are in
        # effect before any prompt is queued.
        deadline = time.monotonic() + timeout
        want = "feature_flags" if supports_preview_metadata else "status"
        while True:
            msg = await self._ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if msg.type != self._aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket closed during handshake: {msg.type}")
            data = json.loads(msg.data)
            if data.get("type") == want:
                return
            self.backlog.append(data)

    def receive(self, timeout: float):
        """One message: dict for JSON, BinaryFrame for binary.  Raises TimeoutError."""
        async def _recv():
            return await self._ws.receive(timeout=timeout)

        try:
            msg = self._run(_recv())
        except asyncio.TimeoutError as e:
            raise TimeoutError("no websocket message within timeout") from e
        if msg.type == self._aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        if msg.type == self._aiohttp.WSMsgType.BINARY:
            return decode_binary_frame(msg.data)
        raise ConnectionError(f"websocket closed: {msg.type} {msg.data!r}")

    def collect(self, prompt_id: str, timeout: float = 120,
                on_message: Callable[[Any], None] | None = None) -> PromptRun:
        """Collect the prompt's messages until the server reports it finished (the
        ``executing`` message with ``node: null`` that follows execution_success/_error/
        _interrupted), or until ``timeout`` seconds (status ``timeout``)."""
        run = PromptRun(prompt_id)
        deadline = time.monotonic() + timeout
        active = False
        pending = list(self.backlog)
        self.backlog = []
        while True:
            if pending:
                msg = pending.pop(0)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    run.status = "timeout"
                    return run
                try:
                    msg = self.receive(timeout=remaining)
                except TimeoutError:
                    run.status = "timeout"
                    return run
            if on_message is not None:
                on_message(msg)
            if isinstance(msg, BinaryFrame):
                mine = (msg.metadata or {}).get("prompt_id") == prompt_id if msg.event == 4 else active
                if mine:
                    run.frames.append(msg)
                continue
            data = msg.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            run.messages.append(msg)
            mtype = msg.get("type")
            if mtype == "execution_start":
                active = True
            elif mtype == "execution_success":
                run.status = "success"
            elif mtype == "execution_error":
                run.status = "error"
            elif mtype == "execution_interrupted":
                run.status = "interrupted"
            elif mtype == "executing" and data.get("node") is None:
                active = False
                return run

    def close(self):
        async def _close():
            if self._ws is not None:
                await self._ws.close()
            if self._session is not None:
                await self._session.close()

        try:
            self._run(_close())
        finally:
            self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
