"""ComfyUI nodes for nst_core: a thin adapter (schemas, model folder, progress, previews, cancel, devices).

Imported only inside ComfyUI (it needs comfy_api, comfy and folder_paths); the entry point is
``comfy_entrypoint`` in the pack's top-level ``__init__.py``.
"""
from .color_match import ColorMatch
from .loaders import LoadVGG, SampleImage
from .models import register_model_folder
from .optimize import Optimize
from .photoreal import PhotorealLoss, PhotoSmooth
from .targets import EncodeContent, EncodeStyle, LossSettings

NODE_CLASSES = [LoadVGG, SampleImage, EncodeContent, EncodeStyle, LossSettings, Optimize, ColorMatch,
                PhotorealLoss, PhotoSmooth]

__all__ = ["NODE_CLASSES", "register_model_folder"]
