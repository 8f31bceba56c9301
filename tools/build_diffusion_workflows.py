#!/usr/bin/env python
"""Write the example workflows that combine neural style with Stable Diffusion, from the specs below.

    python tools/build_diffusion_workflows.py            # (re)write example_workflows/diffusion_*.json
    python tools/build_diffusion_workflows.py --check    # exit 1 if a committed file differs
    python tools/build_diffusion_workflows.py --thumbnails   # also draw each workflow's diagram as its .jpg

Each workflow is written from a short spec: nodes with their widget values *by name*, links by
output and input *name*.  The rest of the UI-format JSON (the inputs and outputs each node shows,
slot numbers, the order of widget values, link records) comes from the node definitions of the
provisioned ComfyUI (``/object_info``, loaded in-process as the tests do), so when a node's inputs
change -- ours or ComfyUI's -- rerunning this script rewrites the files to match; a value named
here that the node no longer has is an error that says so.  Widgets not named here get the node's
default.  The tests check that the committed files are what this script writes.

The checkpoint the workflows load is named with its download address in the form the frontend
reads (the loader node's ``properties.models`` and the workflow's top-level ``models``), so a user
who lacks it is offered the download.

Thumbnails are diagrams of the workflow with the bundled photo and painting it uses, not results:
without a real checkpoint and a GPU no honest result picture can be made here.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "example_workflows"
FRONTEND_VERSION = "1.32.9"   # the frontend bundled with the ComfyUI these files are written against
COMFY_VERSION = "0.3.75"

# ComfyUI's own SD 1.5 download (the file its templates name), 2.1 GB.
SD15 = {
    "name": "v1-5-pruned-emaonly-fp16.safetensors",
    "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
           "v1-5-pruned-emaonly-fp16.safetensors?download=true",
    "directory": "checkpoints",
}
CHECKPOINT_LOADERS = ("CheckpointLoaderSimple",)
STYLE_LAYERS = "relu1_1:4,relu2_1:2,relu3_1,relu4_1:0.5,relu5_1:0.5"
NEGATIVE = "blurry, lowres, text, watermark, signature, frame"


@dataclass
class Node:
    id: int
    type: str
    pos: tuple
    size: tuple = (320, 130)
    values: dict = field(default_factory=dict)   # widget values by name; the rest: the node's defaults
    title: str | None = None


@dataclass
class Spec:
    nodes: list
    links: list        # (origin id, output name, target id, input name)
    groups: list       # (title, [node ids]): the box is fitted around those nodes
    note: str
    note_size: tuple = (560, 330)


def _sd15_nodes(first: int, x: int, y: int, prompt: str, *, latent: bool = True, denoise: float = 1.0,
                seed: int = 42) -> list:
    """Load Checkpoint, the two prompts, (Empty Latent Image,) KSampler, VAE Decode; ids first..first+5."""
    nodes = [
        Node(first, "CheckpointLoaderSimple", (x, y), (320, 100), {"ckpt_name": SD15["name"]}),
        Node(first + 1, "CLIPTextEncode", (x + 360, y), (400, 160), {"text": prompt}, "Prompt"),
        Node(first + 2, "CLIPTextEncode", (x + 360, y + 220), (400, 110), {"text": NEGATIVE}, "Negative prompt"),
        Node(first + 4, "KSampler", (x + 800, y), (320, 270),
             {"seed": seed, "control_after_generate": "fixed", "steps": 20, "cfg": 7.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": denoise}),
        Node(first + 5, "VAEDecode", (x + 1160, y), (220, 50)),
    ]
    if latent:
        nodes.append(Node(first + 3, "EmptyLatentImage", (x, y + 170), (320, 110),
                          {"width": 512, "height": 512, "batch_size": 1}))
    return nodes


def _sd15_links(first: int, *, latent_from: tuple | None = None) -> list:
    ckpt, pos, neg, lat, sampler, decode = range(first, first + 6)
    return [
        (ckpt, "MODEL", sampler, "model"), (ckpt, "CLIP", pos, "clip"), (ckpt, "CLIP", neg, "clip"),
        (pos, "CONDITIONING", sampler, "positive"), (neg, "CONDITIONING", sampler, "negative"),
        (latent_from or (lat, "LATENT")) + (sampler, "latent_image"),
        (sampler, "LATENT", decode, "samples"), (ckpt, "VAE", decode, "vae"),
    ]


def _style_nodes(first: int, x: int, y: int, *, content: str | None, style: str | None, prefix: str) -> list:
    """Load VGG, Encode Content, Encode Style, Optimize (its defaults), Save Image, the bundled photo
    and painting it uses; ids first..first+6."""
    vgg, enc_c, enc_s, opt, save, c_img, s_img = range(first, first + 7)
    nodes = [
        Node(vgg, "NeuralStyleLoadVGG", (x, y), (320, 110)),
        Node(enc_c, "NeuralStyleEncodeContent", (x + 360, y + 170), (320, 130), {"layers": "relu4_2"}),
        Node(enc_s, "NeuralStyleEncodeStyle", (x + 360, y + 370), (320, 180), {"layers": STYLE_LAYERS}),
        Node(opt, "NeuralStyleOptimize", (x + 720, y), (330, 560)),
        Node(save, "SaveImage", (x + 1090, y), (420, 420), {"filename_prefix": f"neural_style/{prefix}"}),
    ]
    samples = [(c_img, content, "Photo"), (s_img, style, "Painting")]
    row = y + 170
    for nid, sample, title in samples:
        if sample:
            nodes.append(Node(nid, "NeuralStyleSampleImage", (x, row), (300, 320), {"sample": sample}, title))
            row += 360
    return nodes


def _style_links(first: int, *, content_from: tuple | None = None, style_from: tuple | None = None) -> list:
    vgg, enc_c, enc_s, opt, save, c_img, s_img = range(first, first + 7)
    return [
        (content_from or (c_img, "image")) + (enc_c, "image"),
        (style_from or (s_img, "image")) + (enc_s, "image"),
        (vgg, "vgg", opt, "vgg"), (enc_c, "content", opt, "content"), (enc_s, "style", opt, "style"),
        (opt, "image", save, "images"),
    ]


MODEL_LINE = ("**Model:** a Stable Diffusion 1.5 checkpoint. The loader names ComfyUI's own download, "
              f"`{SD15['name']}` (2 GB, into `models/checkpoints`); if you do not have it, ComfyUI offers "
              "to download it. Any SD 1.5 checkpoint works: pick yours in **Load Checkpoint**.")

GENERATE_THEN_PAINT = Spec(
    nodes=[*_sd15_nodes(1, 40, 80, "a harbour town at dusk, fishing boats on calm water, old houses along the "
                        "quay, hills behind, wide view, photograph, detailed"),
           Node(7, "PreviewImage", (1200, 190), (300, 300), title="Generated scene"),
           *_style_nodes(10, 40, 700, content=None, style="starry_night.jpg", prefix="generated_then_painted")],
    links=[*_sd15_links(1), *_style_links(10, content_from=(6, "IMAGE")), (6, "IMAGE", 7, "images")],
    groups=[("1 · Stable Diffusion 1.5 makes the scene", range(1, 8)),
            ("2 · Neural style paints it with a real painting's brush strokes", range(10, 17))],
    note=("## Generate a scene, then paint it like a real painting\n\n"
          "Stable Diffusion makes the scene from your prompt; neural style (Gatys et al.) then paints it "
          "with the brush strokes and colours of an actual painting (here *The Starry Night*), not a look "
          "the model learnt.\n\n"
          f"- {MODEL_LINE}\n"
          "- The seed is **fixed**: change the painting or `style_strength` and only the painting half "
          "runs again, on the same scene. Change the seed or the prompt for a new scene.\n"
          "- Your own painting: replace the *Painting* node with a **Load Image** node.\n"
          "- Optimize paints at 512 px, 100 steps: seconds on a GPU, minutes on a CPU."),
)

PAINT_THEN_REFINE = Spec(
    nodes=[*_style_nodes(1, 40, 80, content="tubingen.jpg", style="starry_night.jpg", prefix="painted_before_refine"),
           *_sd15_nodes(10, 40, 1100, "an oil painting of an old town on a river, houses and trees, swirling night "
                        "sky, thick expressive brush strokes", latent=False, denoise=0.35),
           Node(13, "VAEEncode", (40, 1270), (220, 50)),
           Node(16, "SaveImage", (1200, 1210), (420, 420), {"filename_prefix": "neural_style/painted_then_refined"},
                "Refined")],
    links=[*_style_links(1), *_sd15_links(10, latent_from=(13, "LATENT")),
           (4, "image", 13, "pixels"), (10, "VAE", 13, "vae"), (15, "IMAGE", 16, "images")],
    groups=[("1 · Neural style paints the photo", range(1, 8)),
            ("2 · Stable Diffusion 1.5 refines it lightly (image to image)", range(10, 17))],
    note=("## Paint a photo, then let Stable Diffusion refine it\n\n"
          "Neural style paints the photo with the painting's strokes; Stable Diffusion then redraws the "
          "result lightly (image to image): cleaner strokes and finer detail, while the composition and the "
          "painted look stay.\n\n"
          "- **Two controls:** `style_strength` on Optimize (how much of the painting; 0.5 is the balance) "
          "and `denoise` on the KSampler (how much the model may change: low values keep the strokes, "
          "high values let it redraw the picture its own way; 0.35 here).\n"
          "- Describe the picture you want in the prompt: it counts for more as denoise rises.\n"
          f"- {MODEL_LINE}\n"
          "- SD 1.5 works best near 512 px, the size Optimize paints at."),
)

GENERATED_STYLE = Spec(
    nodes=[*_sd15_nodes(1, 40, 80, "an expressionist oil painting, bold swirling brush strokes, thick impasto, "
                        "vivid cobalt blue and orange, abstract landscape"),
           Node(7, "PreviewImage", (1200, 190), (300, 300), title="Generated painting"),
           *_style_nodes(10, 40, 700, content="tubingen.jpg", style=None, prefix="generated_style")],
    links=[*_sd15_links(1), *_style_links(10, style_from=(6, "IMAGE")), (6, "IMAGE", 7, "images")],
    groups=[("1 · Stable Diffusion 1.5 makes a painting from words", range(1, 8)),
            ("2 · Neural style paints the photo in its style", range(10, 17))],
    note=("## A painting from a prompt as the style\n\n"
          "No painting with the look you want? Describe one: Stable Diffusion generates it and neural style "
          "paints your photo with its brush strokes and colours. Only the look of the generated picture is "
          "used (statistics of its features), not what it shows.\n\n"
          "- Prompt for texture and colour rather than a scene: *thick impasto, swirling strokes, cobalt "
          "and orange*.\n"
          "- The seed is **fixed**: change `style_strength` and only the photo is painted again; change the "
          "seed or the prompt for another painting.\n"
          f"- {MODEL_LINE}\n"
          "- Your own photo: replace the *Photo* node with a **Load Image** node."),
)

SPECS = {
    "diffusion_generate_then_paint": GENERATE_THEN_PAINT,
    "diffusion_paint_then_refine": PAINT_THEN_REFINE,
    "diffusion_generated_style": GENERATED_STYLE,
}
TITLE_H, GROUP_PAD, GROUP_TITLE_H = 30, 20, 50   # LiteGraph draws a node's title above its pos


def _group_box(nodes: list) -> list:
    x0 = min(n["pos"][0] for n in nodes) - GROUP_PAD
    y0 = min(n["pos"][1] for n in nodes) - TITLE_H - GROUP_TITLE_H
    x1 = max(n["pos"][0] + n["size"][0] for n in nodes) + GROUP_PAD
    y1 = max(n["pos"][1] + n["size"][1] for n in nodes) + GROUP_PAD
    return [x0, y0, x1 - x0, y1 - y0]


def _pack_version() -> tuple[str, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["name"], project["version"]


def _harness():
    import importlib.util

    if "harness" in sys.modules:
        return sys.modules["harness"]
    spec = importlib.util.spec_from_file_location("harness", REPO / "tests" / "comfy" / "harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module
    spec.loader.exec_module(module)
    return module


def _default(spec) -> object:
    harness = _harness()
    opts = harness._spec_options(spec)
    if "default" in opts:
        return opts["default"]
    options = spec[0] if isinstance(spec[0], list) else opts.get("options") or []
    if options:
        return options[0]
    raise ValueError("no default")


def _node_json(node: Node, node_def: dict, pack: tuple[str, str]) -> tuple[dict, list]:
    """The node as the frontend saves it, and its input names in slot order."""
    harness = _harness()
    required = (node_def.get("input") or {}).get("required") or {}
    optional = (node_def.get("input") or {}).get("optional") or {}
    order = node_def.get("input_order") or {}
    widgets = harness.node_widgets(node_def)
    widget_names = {w.name for w in widgets if w.serialize}
    unknown = set(node.values) - {w.name for w in widgets}
    if unknown:
        raise ValueError(f"node {node.id} ({node.type}) has no widget {sorted(unknown)}; it has "
                         f"{[w.name for w in widgets]}")
    inputs = []
    for section, names in ((required, order.get("required") or list(required)),
                           (optional, order.get("optional") or list(optional))):
        for name in names:
            spec = section[name]
            typ = harness._spec_type(spec)
            entry = {"name": name, "type": typ, "link": None}
            if name in widget_names:
                entry["widget"] = {"name": name}
            if section is optional:
                entry["shape"] = 7
            inputs.append(entry)
    values = []
    for w in widgets:
        if w.name in node.values:
            values.append(node.values[w.name])
        elif w.name == "control_after_generate":
            values.append("fixed")
        else:
            spec = required.get(w.name) or optional.get(w.name)
            values.append(_default(spec))
    ours = node.type.startswith("NeuralStyle")
    properties = {"cnr_id": pack[0] if ours else "comfy-core", "ver": pack[1] if ours else COMFY_VERSION,
                  "Node name for S&R": node.type}
    if node.type in CHECKPOINT_LOADERS:
        properties["models"] = [dict(SD15)]
    out = {"id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size), "flags": {},
           "order": 0, "mode": 0, "inputs": inputs,
           "outputs": [{"name": name, "type": typ, "links": []}
                       for name, typ in zip(node_def["output_name"], node_def["output"])],
           "properties": properties, "widgets_values": values}
    if node.title:
        out["title"] = node.title
    return out, [i["name"] for i in inputs]


def _order(nodes: dict, links: list) -> None:
    """The frontend's execution order (a topological sort), as it stores it in each node's ``order``."""
    deps = {nid: {lk[1] for lk in links if lk[3] == nid} for nid in nodes}
    done: list = []
    while len(done) < len(nodes):
        ready = sorted(nid for nid in nodes if nid not in done and deps[nid] <= set(done))
        if not ready:
            raise ValueError("the links form a cycle")
        done.append(ready[0])
    for i, nid in enumerate(done):
        nodes[nid]["order"] = i


def build(name: str, object_info: dict) -> dict:
    """The UI-format workflow ``name`` (a key of :data:`SPECS`) for these node definitions."""
    spec = SPECS[name]
    pack = _pack_version()
    nodes, slots = {}, {}
    for node in spec.nodes:
        if node.type not in object_info:
            raise KeyError(f"{name}: node type {node.type} is not in this ComfyUI")
        nodes[node.id], slots[node.id] = _node_json(node, object_info[node.type], pack)
    links = []
    for lid, (origin, out_name, target, in_name) in enumerate(spec.links, start=1):
        outs = nodes[origin]["outputs"]
        o_slot = next((i for i, o in enumerate(outs) if o["name"] == out_name), None)
        if o_slot is None or in_name not in slots[target]:
            raise ValueError(f"{name}: link {origin}.{out_name} -> {target}.{in_name}: no such output or input")
        t_slot = slots[target].index(in_name)
        typ = outs[o_slot]["type"]
        outs[o_slot]["links"].append(lid)
        nodes[target]["inputs"][t_slot]["link"] = lid
        links.append([lid, origin, o_slot, target, t_slot, typ])
    _order(nodes, links)
    groups = [(title, _group_box([nodes[i] for i in ids if i in nodes])) for title, ids in spec.groups]
    note_id = max(nodes) + 1
    note_pos = [max(g[1][0] + g[1][2] for g in groups) + 40, groups[0][1][1] + GROUP_TITLE_H + TITLE_H]
    nodes[note_id] = {"id": note_id, "type": "MarkdownNote", "pos": note_pos, "size": list(spec.note_size),
                      "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [spec.note], "title": "About this workflow", "color": "#432",
                      "bgcolor": "#653"}
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-neural-style/example_workflows/{name}")),
        "revision": 0, "last_node_id": max(nodes), "last_link_id": len(links),
        "nodes": [nodes[k] for k in sorted(nodes)], "links": links,
        "groups": [{"id": i, "title": title, "bounding": box, "color": "#3f789e", "font_size": 24, "flags": {}}
                   for i, (title, box) in enumerate(groups, start=1)],
        "config": {}, "extra": {"ds": {"scale": 0.6, "offset": [40, 40]}, "frontendVersion": FRONTEND_VERSION},
        "models": [dict(SD15)], "version": 0.4,
    }


def text(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


def object_info_inprocess() -> dict:
    """/object_info of the provisioned ComfyUI with this pack, loaded into this process."""
    harness = _harness()
    base = Path(tempfile.mkdtemp(prefix="nst-build-workflows-"))
    layout = harness.make_layout(base)
    return harness.load_comfyui_inprocess(layout, layout.io_dirs("build")).object_info()


# Thumbnails: a diagram of the workflow (what goes in, which model does what), not a result: no picture
# from a real checkpoint can be made here, and a random-weight test model makes noise.  The bundled
# photo and painting appear as themselves.  Each item: (kind, column, row, text or sample file).
DIAGRAMS = {
    "diffusion_generate_then_paint": {
        "items": {"prompt": ("text", 0, 0, "prompt:\na harbour town\nat dusk"), "sd": ("sd", 1, 0, "Stable\nDiffusion 1.5"),
                  "ns": ("ns", 2, 0, "neural style"), "style": ("image", 2, 1, "starry_night.jpg"),
                  "out": ("out", 3, 0, "the scene,\npainted")},
        "arrows": [("prompt", "sd"), ("sd", "ns"), ("style", "ns"), ("ns", "out")],
    },
    "diffusion_paint_then_refine": {
        "items": {"photo": ("image", 0, 0, "tubingen.jpg"), "ns": ("ns", 1, 0, "neural style"),
                  "style": ("image", 1, 1, "starry_night.jpg"), "sd": ("sd", 2, 0, "Stable Diffusion\nrefines\n(denoise 0.35)"),
                  "out": ("out", 3, 0, "painted,\nrefined")},
        "arrows": [("photo", "ns"), ("style", "ns"), ("ns", "sd"), ("sd", "out")],
    },
    "diffusion_generated_style": {
        "items": {"photo": ("image", 0, 0, "tubingen.jpg"), "ns": ("ns", 2, 0, "neural style"),
                  "prompt": ("text", 0, 1, "prompt:\nexpressionist\noil painting"), "sd": ("sd", 1, 1, "Stable\nDiffusion 1.5"),
                  "out": ("out", 3, 0, "the photo in\nthat style")},
        "arrows": [("photo", "ns"), ("prompt", "sd"), ("sd", "ns"), ("ns", "out")],
    },
}
THUMB_W, THUMB_H, CELL_W, CELL_H, BOX_W, BOX_H = 512, 288, 128, 144, 108, 88
COLORS = {"text": ("#2b2b2b", "#d8d8d8"), "sd": ("#2f5d8a", "#ffffff"), "ns": ("#8a5a2f", "#ffffff"),
          "out": ("#3a3a3a", "#ffffff")}


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def draw_thumbnail(name: str):
    """The diagram of workflow ``name`` as a PIL image."""
    from PIL import Image, ImageDraw

    spec = DIAGRAMS[name]
    im = Image.new("RGB", (THUMB_W, THUMB_H), "#171717")
    draw = ImageDraw.Draw(im)
    font = _font(13)
    boxes = {}
    for key, (kind, col, row, label) in spec["items"].items():
        cx, cy = col * CELL_W + CELL_W // 2, row * CELL_H + CELL_H // 2
        box = (cx - BOX_W // 2, cy - BOX_H // 2, cx + BOX_W // 2, cy + BOX_H // 2)
        boxes[key] = box
        if kind == "image":
            from PIL import ImageOps

            with Image.open(REPO / "assets" / "samples" / label) as sample:
                im.paste(ImageOps.fit(sample.convert("RGB"), (BOX_W, BOX_H)), box[:2])
            continue
        fill, ink = COLORS[kind]
        draw.rounded_rectangle(box, radius=10, fill=fill, outline="#888888" if kind == "out" else None,
                               width=2)
        draw.multiline_text((cx, cy), label, fill=ink, font=font, anchor="mm", align="center", spacing=3)
    for a, b in spec["arrows"]:
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes[a], boxes[b]
        if ay0 == by0:   # same row: side to side
            start, end = (ax1, (ay0 + ay1) // 2), (bx0, (by0 + by1) // 2)
        elif ax0 == bx0:  # same column: bottom up
            start, end = ((ax0 + ax1) // 2, ay0), ((bx0 + bx1) // 2, by1)
        else:             # from the row below, diagonally up
            start, end = (ax1, (ay0 + ay1) // 2), ((bx0 + bx1) // 2 - 20, by1)
        draw.line([start, end], fill="#e0e0e0", width=3)
        dx, dy = end[0] - start[0], end[1] - start[1]
        norm = max((dx * dx + dy * dy) ** 0.5, 1)
        ux, uy = dx / norm, dy / norm
        tip = [end, (end[0] - 10 * ux + 6 * uy, end[1] - 10 * uy - 6 * ux),
               (end[0] - 10 * ux - 6 * uy, end[1] - 10 * uy + 6 * ux)]
        draw.polygon(tip, fill="#e0e0e0")
    return im


README_PICTURE = REPO / "assets" / "readme" / "diffusion_workflows.jpg"


def readme_picture() -> Path:
    """The three diagrams one above the other, each under its workflow's name, for the README."""
    from PIL import Image, ImageDraw

    band = 28
    sheet = Image.new("RGB", (THUMB_W, len(DIAGRAMS) * (THUMB_H + band)), "#171717")
    draw = ImageDraw.Draw(sheet)
    for i, name in enumerate(DIAGRAMS):
        y = i * (THUMB_H + band)
        draw.text((12, y + band // 2), name.replace("diffusion_", "").replace("_", " "), fill="#f0f0f0",
                  font=_font(16), anchor="lm")
        sheet.paste(draw_thumbnail(name), (0, y + band))
    sheet.save(README_PICTURE, "JPEG", quality=88, optimize=True)
    return README_PICTURE


def thumbnail(path: Path) -> Path:
    """``<workflow>.jpg``: the workflow's diagram, a small JPEG."""
    out = path.with_suffix(".jpg")
    draw_thumbnail(path.stem).save(out, "JPEG", quality=88, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    ap.add_argument("--thumbnails", action="store_true",
                    help="also draw each workflow's diagram as <name>.jpg, and the README's picture of all three")
    args = ap.parse_args(argv)
    info = object_info_inprocess()
    stale = []
    for name in SPECS:
        path = WORKFLOWS / f"{name}.json"
        new = text(build(name, info))
        if args.check:
            if not path.is_file() or path.read_text() != new:
                stale.append(path.name)
            continue
        path.write_text(new)
        print(f"wrote {path.relative_to(REPO)}")
        if args.thumbnails:
            print(f"wrote {thumbnail(path).relative_to(REPO)}")
    if args.thumbnails and not args.check:
        print(f"wrote {readme_picture().relative_to(REPO)}")
    if stale:
        print("differ from what this script writes: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
