"""API prompts for the pack's nodes, small enough for a 2-core CPU (shared by test_nodes_*.py)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "assets" / "samples"
WORKFLOWS = REPO / "example_workflows"
DEFAULT_WEIGHTS = "default (original VGG19, offline)"
# Stock nodes that load a diffusion checkpoint: workflows with one run in test_diffusion_workflows.py.
CHECKPOINT_LOADERS = frozenset({"CheckpointLoaderSimple"})


def loads_a_checkpoint(path: Path) -> bool:
    import json

    return any(n.get("type") in CHECKPOINT_LOADERS for n in json.loads(Path(path).read_text()).get("nodes", []))

# Optimize's face; Optimize Settings (node "11"); Video Settings (node "12", only where a video input is given).
FACE_DEFAULTS = {"size": 64, "steps": 4, "style_strength": 0.5, "style_loss": "gram", "init": "content", "seed": 0,
                 "color": "none", "seamless": False}
RUN_DEFAULTS = {"optimizer": "lbfgs", "start_size": 0, "precision": "auto", "tile_size": 0, "lr": 0.02,
                "history_size": 0, "preview_interval": 2}
VIDEO_DEFAULTS = {"temporal": True, "flow": "dis", "long_term": 0, "passes": 1, "frame_steps": 0}


def basic_prompt(*, content="tubingen.jpg", style="starry_night.jpg", content_layers="relu4_2",
                 style_layers="relu1_1:4,relu2_1:2,relu3_1,relu4_1:0.5,relu5_1:0.5", save=True, **optimize) -> dict:
    """Sample content + sample style -> Optimize -> SaveImage (node "9"), loss plot -> node "10";
    ``optimize`` sets inputs of Optimize or of its settings nodes, wherever each input lives."""
    pick = lambda defaults: {**defaults, **{k: v for k, v in optimize.items() if k in defaults}}  # noqa: E731
    unknown = set(optimize) - set(FACE_DEFAULTS) - set(RUN_DEFAULTS) - set(VIDEO_DEFAULTS)
    face = {**pick(FACE_DEFAULTS), **{k: optimize[k] for k in unknown}}
    prompt = {
        "1": {"class_type": "NeuralStyleSampleImage", "inputs": {"sample": content}},
        "2": {"class_type": "NeuralStyleSampleImage", "inputs": {"sample": style}},
        "3": {"class_type": "NeuralStyleLoadVGG",
              "inputs": {"weights": DEFAULT_WEIGHTS, "pooling": "max", "convention": "auto"}},
        "4": {"class_type": "NeuralStyleEncodeContent",
              "inputs": {"image": ["1", 0], "layers": content_layers, "weight": 1.0}},
        "5": {"class_type": "NeuralStyleEncodeStyle",
              "inputs": {"image": ["2", 0], "layers": style_layers, "weight": 1.0, "scale": 1.0}},
        "6": {"class_type": "NeuralStyleOptimize",
              "inputs": {"vgg": ["3", 0], "content": ["4", 0], "style": ["5", 0], "settings": ["11", 0], **face}},
        "11": {"class_type": "NeuralStyleOptimizeSettings", "inputs": pick(RUN_DEFAULTS)},
    }
    if set(optimize) & set(VIDEO_DEFAULTS):
        prompt["12"] = {"class_type": "NeuralStyleVideoSettings", "inputs": pick(VIDEO_DEFAULTS)}
        prompt["6"]["inputs"]["video"] = ["12", 0]
    if save:
        prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "nst_test"}}
        prompt["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 1]}}
    return copy.deepcopy(prompt)


def sample_array(name: str, size=None) -> np.ndarray:
    """A bundled sample as float RGB 0..1 (H, W, 3), optionally resized (PIL bicubic) to (w, h)."""
    from PIL import Image

    with Image.open(SAMPLES / name) as im:
        im = im.convert("RGB")
        if size is not None:
            im = im.resize(size, Image.BICUBIC)
        return np.asarray(im, dtype=np.float32) / 255.0


def to_array(pil_image) -> np.ndarray:
    return np.asarray(pil_image.convert("RGB"), dtype=np.float32) / 255.0


def fit(wh, long_side: int):
    w, h = wh
    s = long_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))
