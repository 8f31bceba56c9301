"""Photorealistic transfer nodes: the loss settings with the photorealism term, and the final smoothing."""
from __future__ import annotations

import torch

import comfy.model_management as mm
from comfy_api.latest import io

from ..nst_core import LossWeights, Smoothing, photorealistic_settings, smooth
from .common import (CATEGORY, Loss, NeuralStyleError, core_to_image, declared_input, declared_problem,
                     declared_values, image_to_core)
from .search import search_aliases

PHOTO_STYLE_LAYERS = ",".join(f"{n}:{w:g}" for n, w in photorealistic_settings().style_layers.items())


class PhotorealLoss(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        s = photorealistic_settings()
        return io.Schema(
            node_id="NeuralStylePhotorealLoss",
            display_name="Neural Style: Photorealistic Loss",
            category=CATEGORY,
            **search_aliases("NeuralStylePhotorealLoss"),
            description="Loss settings for a photo in the look of another photo (Luan et al., Deep Photo "
                        "Style Transfer): the result's colours must be, in every 3×3 window, an affine "
                        "function of the content photo's, so its edges and shapes stay the photo's. Use with "
                        f"Encode Style layers '{PHOTO_STYLE_LAYERS}', init content, color none, and "
                        "Photo Smooth after Optimize.",
            inputs=[
                declared_input(LossWeights, "photoreal", default=s.photoreal),
                declared_input(LossWeights, "content", default=s.content),
                declared_input(LossWeights, "style"),
                declared_input(LossWeights, "tv"),
            ],
            outputs=[Loss.Output(display_name="loss")],
        )

    @classmethod
    def validate_inputs(cls, **inputs):
        return declared_problem([LossWeights], inputs)

    @classmethod
    def execute(cls, **inputs):
        return io.NodeOutput(LossWeights(**declared_values(LossWeights, inputs)))


class PhotoSmooth(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        s = photorealistic_settings()
        return io.Schema(
            node_id="NeuralStylePhotoSmooth",
            display_name="Neural Style: Photo Smooth",
            category=CATEGORY,
            **search_aliases("NeuralStylePhotoSmooth"),
            description="Edge-preserving smoothing guided by the content photo (guided filter, He et al. "
                        "2010): removes leftover painterly texture, keeps the photo's edges.",
            inputs=[
                io.Image.Input("image", tooltip="The stylised image(s)."),
                io.Image.Input("guide", tooltip="The content photo (resized to the image's size). A batch of "
                                                "the same length as 'image' guides frame by frame."),
                declared_input(Smoothing, "radius", default=s.smooth_radius),
                declared_input(Smoothing, "eps", default=s.smooth_eps),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def validate_inputs(cls, **inputs):
        return declared_problem([Smoothing], inputs)

    @classmethod
    def execute(cls, image, guide, radius, eps):
        src = image_to_core(image, "image")
        ref = image_to_core(guide, "guide")
        if ref.shape[0] not in (1, src.shape[0]):
            raise NeuralStyleError(f"guide: {ref.shape[0]} images for {src.shape[0]}; give one guide, or one "
                                   "per image")
        with torch.inference_mode(False):
            out = smooth(src, ref, int(radius), float(eps))
        return io.NodeOutput(core_to_image(out, mm.intermediate_device()))
