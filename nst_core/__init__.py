"""Neural style transfer (Gatys, Ecker & Bethge) as a small library; see ``stylize``."""
from .image import ImageError, load_image, resize, resize_long, save_image, to_pil
from .options import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, ContentTarget, Interrupted, LossWeights,
                      Options, Result, StepInfo, StyleTarget, StylizeError)
from .transfer import plan_scales, stylize
from .vgg import VGGFeatures, layer_names
from .weights import DEFAULT, WeightsError, convert_to_safetensors, default_weights_path, load_vgg

__all__ = [
    "ContentTarget", "StyleTarget", "LossWeights", "Options", "Result", "StepInfo", "stylize", "plan_scales",
    "Interrupted", "StylizeError", "ImageError", "WeightsError", "VGGFeatures", "layer_names", "load_vgg",
    "convert_to_safetensors", "default_weights_path", "DEFAULT", "load_image", "save_image", "resize",
    "resize_long", "to_pil", "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS",
]
