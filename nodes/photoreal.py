"""Photorealistic transfer nodes: the loss settings with the photorealism term, and the final smoothing."""
from __future__ import annotations

import torch

import comfy.model_management as mm
from comfy_api.latest import io

from ..nst_core.options import LossWeights
from ..nst_core.photoreal import photorealistic_settings, smooth
from .convert import CATEGORY, Loss, NeuralStyleError, core_to_image, image_to_core
from .search import search_aliases

PHOTO_STYLE_LAYERS = ",".join(f"{n}:{w:g}" for n, w in photorealistic_settings().style_layers.items())


class PhotorealLoss(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        s, d = photorealistic_settings(), LossWeights()
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
                io.Float.Input("photoreal_weight", default=s.photoreal, min=0.0, max=1e7, step=100.0,
                               tooltip="Strength of the photorealism term (matting Laplacian of the content "
                                       "photo); 0 turns it off. Higher: cleaner, less colour transfer."),
                io.Float.Input("content_weight", default=s.content, min=0.0, max=10000.0, step=0.1,
                               tooltip="How much the result must keep the photo's content."),
                io.Float.Input("style_weight", default=d.style, min=0.0, max=100000.0, step=1.0,
                               tooltip="How much the result must match the style photo's look."),
                io.Float.Input("tv_weight", default=d.tv, min=0.0, max=10.0, step=0.0001, round=0.00001,
                               tooltip="Total variation: smooths high-frequency noise. 0 turns it off."),
            ],
            outputs=[Loss.Output(display_name="loss")],
        )

    @classmethod
    def execute(cls, photoreal_weight, content_weight, style_weight, tv_weight):
        return io.NodeOutput(LossWeights(content=float(content_weight), style=float(style_weight),
                                         tv=float(tv_weight), photoreal=float(photoreal_weight)))


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
                io.Int.Input("radius", default=s.smooth_radius, min=0, max=64,
                             tooltip="Window radius in pixels; 0 passes the image through."),
                io.Float.Input("eps", default=s.smooth_eps, min=1e-6, max=1.0, step=1e-5, round=1e-6,
                               tooltip="Which edges of the photo count: variations below about √eps "
                                       "(in 0..1 units) are smoothed away."),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

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
