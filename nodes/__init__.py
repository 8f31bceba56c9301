"""ComfyUI nodes for nst_core: a thin adapter (schemas, model folder, progress, previews, cancel, devices).

Imported only inside ComfyUI (it needs comfy_api, comfy and folder_paths); the entry point is
``comfy_entrypoint`` in the pack's top-level ``__init__.py``.
"""
from .color_match import ColorMatch
from .encode import EncodeContent, EncodeStyle, TextureCanvas
from .loaders import LoadVGG, SampleImage, SampleVideo
from .models import register_model_folder
from .optimize import Optimize
from .photoreal import PhotorealLoss, PhotoSmooth
from .settings import LossSettings, OptimizeSettings, VideoSettings

NODE_CLASSES = [LoadVGG, SampleImage, SampleVideo, EncodeContent, TextureCanvas, EncodeStyle, LossSettings,
                OptimizeSettings, VideoSettings, Optimize, ColorMatch, PhotorealLoss, PhotoSmooth]

__all__ = ["NODE_CLASSES", "register_model_folder"]
