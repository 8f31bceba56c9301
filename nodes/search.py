"""Words the node search finds each node by, besides its name (the V3 schema's ``search_aliases``)."""
from __future__ import annotations

import dataclasses

from comfy_api.latest import io

# What people type when they look for this kind of node.
ALIASES = {
    "NeuralStyleOptimize": ("style transfer", "neural style transfer", "gatys", "vgg", "paint like",
                            "stylize", "stylise", "artistic style", "painting style"),
    "NeuralStyleEncodeStyle": ("style image", "style reference", "reference painting", "paint like", "gatys"),
    "NeuralStyleEncodeContent": ("content image", "style transfer photo", "gatys"),
    "NeuralStyleTextureCanvas": ("texture synthesis", "seamless texture", "tileable", "pattern", "empty canvas"),
    "NeuralStyleLoadVGG": ("vgg", "vgg19", "vgg16", "style transfer model", "gatys"),
    "NeuralStyleSampleImage": ("sample image", "example painting", "example photo", "starry night"),
    "NeuralStyleSampleVideo": ("sample video", "example clip", "big buck bunny", "video style transfer"),
    "NeuralStyleLossSettings": ("style weight", "content weight", "total variation", "style transfer settings"),
    "NeuralStyleOptimizeSettings": ("tile size", "precision", "optimizer", "lbfgs", "style transfer settings"),
    "NeuralStyleVideoSettings": ("optical flow", "temporal consistency", "video style transfer", "flicker"),
    "NeuralStyleColorMatch": ("color transfer", "colour transfer", "match colors", "color match", "histogram match"),
    "NeuralStylePhotorealLoss": ("photorealistic style transfer", "photo style", "color grading", "matting laplacian"),
    "NeuralStylePhotoSmooth": ("guided filter", "edge-preserving smoothing", "photo smoothing"),
}


def search_aliases(node_id: str, schema=io.Schema) -> dict:
    """``{"search_aliases": [...]}`` for ``schema(...)`` where that schema has the field (ComfyUI
    newer than 0.3.75); ``{}`` where it has not, so older ComfyUI builds the schema as before."""
    if "search_aliases" not in {f.name for f in dataclasses.fields(schema)}:
        return {}
    return {"search_aliases": list(ALIASES[node_id])}
