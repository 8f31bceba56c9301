"""Neural style transfer (Gatys, Ecker & Bethge) as a small library; see ``stylize``.

These names are the library's public face (the ComfyUI nodes use nothing else). Video, which needs
OpenCV and PyAV, is the subpackage ``nst_core.video``, imported only when a clip is stylised.
"""
from .checks import check_fields, check_loss_weights, check_numbers, check_result, check_value
from .color import match_color
from .image import BACKGROUND, ImageError, load_image, load_mask, resize, resize_long, save_image, to_pil
from .options import (COLOR_MODES, DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, FLOWS, INITS, MAX_SIZE, MIN_SIZE,
                      OPTIMIZERS, PRECISIONS, STYLE_LOSSES, ContentTarget, Interrupted, LossWeights, Options,
                      Result, StepInfo, StyleTarget, StylizeError, VideoOptions)
from .photoreal import PhotorealSettings, Smoothing, photorealistic_settings, smooth
from .runtime import drop_runtime_copy
from .schedule import plan_scales
from .seamless import seam_ratio, tiled_2x2
from .spec import Spec, by_key, key_of, kind, option, spec_of, specs
from .transfer import stylize
from .vgg import CONVENTIONS, VGGFeatures, format_layers, layer_names, parse_layers
from .weights import (DEFAULT, WEIGHT_EXTENSIONS, WeightsError, convert_to_safetensors, default_weights_path,
                      load_vgg)

__all__ = [
    "ContentTarget", "StyleTarget", "LossWeights", "Options", "VideoOptions", "Result", "StepInfo", "stylize",
    "plan_scales", "Interrupted", "StylizeError", "ImageError", "WeightsError", "VGGFeatures", "layer_names",
    "load_vgg", "convert_to_safetensors", "default_weights_path", "DEFAULT", "WEIGHT_EXTENSIONS", "CONVENTIONS",
    "load_image", "load_mask", "save_image", "resize", "resize_long", "to_pil", "BACKGROUND",
    "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS", "MIN_SIZE", "MAX_SIZE", "INITS", "COLOR_MODES", "OPTIMIZERS",
    "STYLE_LOSSES", "PRECISIONS", "FLOWS", "parse_layers", "format_layers", "match_color", "smooth", "Smoothing",
    "PhotorealSettings", "photorealistic_settings", "drop_runtime_copy", "check_fields", "check_value",
    "check_loss_weights", "check_numbers", "check_result", "Spec", "option", "specs", "spec_of", "key_of",
    "by_key", "kind", "seam_ratio", "tiled_2x2",
]
