"""What to optimise for: the content (a photo, or a blank canvas for a texture) and the style(s)."""
from __future__ import annotations

from comfy_api.latest import io

import torch

from ..nst_core import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, MAX_SIZE, MIN_SIZE, ContentTarget, StyleTarget,
                        format_layers)
from .common import (CATEGORY, Content, NeuralStyleError, Style, declared_input, declared_problem, image_to_core,
                     layers_problem, mask_to_core, parse_layers)
from .search import search_aliases

CONTENT_LAYERS = format_layers(DEFAULT_CONTENT_LAYERS)
STYLE_LAYERS = format_layers(DEFAULT_STYLE_LAYERS)
_LAYERS_HELP = ("VGG layers as a comma-separated list, each optionally with a weight: "
                "'relu4_2' or 'relu4_2:1, relu3_1:0.5'. Names: convX_Y, reluX_Y, poolX.")


class EncodeContent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleEncodeContent",
            display_name="Neural Style: Encode Content",
            category=CATEGORY,
            **search_aliases("NeuralStyleEncodeContent"),
            description="The photo whose content (layout, objects) the result keeps. A batch of images "
                        "is treated as frames of a video.",
            inputs=[
                io.Image.Input("image", tooltip="Content image; a batch is stylised frame by frame."),
                io.String.Input("layers", default=CONTENT_LAYERS,
                                tooltip=_LAYERS_HELP + " Deeper layers keep less detail (default relu4_2)."),
                declared_input(ContentTarget, "weight"),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: where the content term applies (white = keep the "
                                      "photo's content, black = free for the style)."),
            ],
            outputs=[Content.Output(display_name="content")],
        )

    @classmethod
    def validate_inputs(cls, layers, **inputs):
        problem = layers_problem(layers, "content")
        return declared_problem([ContentTarget], inputs) if problem is True else problem

    @classmethod
    def execute(cls, image, layers, weight, mask=None):
        target = ContentTarget(image=image_to_core(image, "content image"),
                               layers=parse_layers(layers, "content"), weight=float(weight),
                               mask=mask_to_core(mask, "content mask"))
        return io.NodeOutput(target)


class EncodeStyle(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleEncodeStyle",
            display_name="Neural Style: Encode Style",
            category=CATEGORY,
            **search_aliases("NeuralStyleEncodeStyle"),
            description="A painting whose style (colours, brush strokes, texture) the result takes. Chain "
                        "several through 'previous': unmasked styles are blended by their weights, a "
                        "masked style paints only its region.",
            inputs=[
                io.Image.Input("image", tooltip="Style image; several images in a batch are averaged "
                                                "into one style."),
                io.String.Input("layers", default=STYLE_LAYERS,
                                tooltip=_LAYERS_HELP + " Shallow layers give fine texture, deep layers "
                                                       "larger patterns."),
                declared_input(StyleTarget, "weight"),
                declared_input(StyleTarget, "scale"),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: the region of the output this style paints (regional "
                                      "style). Same aspect ratio as the content."),
                Style.Input("previous", optional=True,
                            tooltip="Optional: styles from other Encode Style nodes, to combine with "
                                    "this one."),
                # New inputs go last: workflows address inputs by slot number.
                io.Mask.Input("style_mask", optional=True,
                              tooltip="Optional: the region of the style image to take the style from "
                                      "(same aspect ratio as the style image). With 'mask' this pairs "
                                      "regions: sky to sky, buildings to buildings."),
            ],
            outputs=[Style.Output(display_name="style", tooltip="This style plus any previous ones.")],
        )

    @classmethod
    def validate_inputs(cls, layers, **inputs):
        problem = layers_problem(layers, "style")
        return declared_problem([StyleTarget], inputs) if problem is True else problem

    @classmethod
    def execute(cls, image, layers, weight, scale, mask=None, previous=None, style_mask=None):
        target = StyleTarget(image=image_to_core(image, "style image"), layers=parse_layers(layers, "style"),
                             weight=float(weight), scale=float(scale), mask=mask_to_core(mask, "style mask"),
                             source_mask=mask_to_core(style_mask, "style image mask"))
        # A new tuple: the upstream node's cached output is never modified.
        return io.NodeOutput(tuple(previous or ()) + (target,))


class TextureCanvas(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleTextureCanvas",
            display_name="Neural Style: Texture Canvas",
            category=CATEGORY,
            **search_aliases("NeuralStyleTextureCanvas"),
            description="No photo: Optimize paints a new image of the painting's texture at this size "
                        "(texture synthesis, Gatys et al. 2015), starting from noise. Set Optimize's size to 0 "
                        "to keep this size (another size becomes the long side). Turn Optimize's seamless on "
                        "for a texture that tiles. Connect it where Encode Content goes.",
            inputs=[
                io.Int.Input("width", default=512, min=MIN_SIZE, max=MAX_SIZE, step=16,
                             tooltip=f"Width of the texture in px ({MIN_SIZE} to {MAX_SIZE}; seamless rounds "
                                     "it to a multiple of 16)."),
                io.Int.Input("height", default=512, min=MIN_SIZE, max=MAX_SIZE, step=16,
                             tooltip=f"Height of the texture in px ({MIN_SIZE} to {MAX_SIZE}; seamless rounds "
                                     "it to a multiple of 16)."),
            ],
            outputs=[Content.Output(display_name="content", tooltip="A blank canvas: only the style counts.")],
        )

    @classmethod
    def execute(cls, width, height):
        for name, value in (("width", width), ("height", height)):
            if not MIN_SIZE <= int(value) <= MAX_SIZE:
                raise NeuralStyleError(f"Neural Style Texture Canvas: {name} is {value}; use a value from "
                                       f"{MIN_SIZE} to {MAX_SIZE}")
        with torch.inference_mode(False):
            return io.NodeOutput(ContentTarget.canvas(int(height), int(width)))
