"""Colour Match: recolour any IMAGE to a reference's colours (nst_core.color.match_color)."""
from __future__ import annotations

import torch

import comfy.model_management as mm
from comfy_api.latest import io

from ..nst_core import match_color
from .common import CATEGORY, core_to_image, image_to_core
from .search import search_aliases


class ColorMatch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleColorMatch",
            display_name="Neural Style: Color Match",
            category=CATEGORY,
            **search_aliases("NeuralStyleColorMatch"),
            description="Gives an image the colours of a reference image. Works in any image workflow, "
                        "e.g. to give a stylised result back the photo's colours.",
            inputs=[
                io.Image.Input("image", tooltip="The image(s) to recolour."),
                io.Image.Input("reference", tooltip="Whose colours to take. A batch of the same length "
                                                    "as 'image' matches frame by frame; otherwise the "
                                                    "first reference image is used for all."),
                io.Combo.Input("method", options=["linear", "histogram"], default="linear",
                               tooltip="linear: match the mean and covariance of RGB (smooth, keeps "
                                       "contrast); histogram: match each channel's histogram exactly."),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, reference, method):
        src = image_to_core(image, "image")
        ref = image_to_core(reference, "reference")
        with torch.inference_mode(False):
            if ref.shape[0] == src.shape[0] > 1:
                out = torch.cat([match_color(src[i:i + 1], ref[i:i + 1], method) for i in range(src.shape[0])])
            else:
                out = match_color(src, ref[:1], method)
        return io.NodeOutput(core_to_image(out, mm.intermediate_device()))
