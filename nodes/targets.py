"""What to optimise for: content, style(s) and the loss weights."""
from __future__ import annotations

from comfy_api.latest import io

from ..nst_core import options
from ..nst_core.checks import check_loss_weights
from ..nst_core.options import ContentTarget, LossWeights, StyleTarget, StylizeError
from ..nst_core.vgg import format_layers
from .convert import (CATEGORY, Content, Loss, NeuralStyleError, Style, first_problem, image_to_core,
                      layers_problem, mask_to_core, parse_layers, range_problem)
from .search import search_aliases

DEFAULT_CONTENT_LAYERS = format_layers(options.DEFAULT_CONTENT_LAYERS)
DEFAULT_STYLE_LAYERS = format_layers(options.DEFAULT_STYLE_LAYERS)
CONTENT_MAX, STYLE_MAX, TV_MAX, TEMPORAL_MAX = 10000.0, 100000.0, 10.0, 10000.0
TARGET_WEIGHT_MAX = 100.0
SCALE_MIN, SCALE_MAX = 0.25, 4.0
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
                io.String.Input("layers", default=DEFAULT_CONTENT_LAYERS,
                                tooltip=_LAYERS_HELP + " Deeper layers keep less detail (default relu4_2)."),
                io.Float.Input("weight", default=1.0, min=0.0, max=TARGET_WEIGHT_MAX, step=0.05,
                               tooltip="Multiplies the content weight of the loss settings; "
                                       "higher keeps more of the photo."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: where the content term applies (white = keep the "
                                      "photo's content, black = free for the style)."),
            ],
            outputs=[Content.Output(display_name="content")],
        )

    @classmethod
    def validate_inputs(cls, layers, weight):
        return first_problem(layers_problem(layers, "content"),
                             range_problem(weight, "weight", 0.0, TARGET_WEIGHT_MAX))

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
                io.String.Input("layers", default=DEFAULT_STYLE_LAYERS,
                                tooltip=_LAYERS_HELP + " Shallow layers give fine texture, deep layers "
                                                       "larger patterns."),
                io.Float.Input("weight", default=1.0, min=0.0, max=TARGET_WEIGHT_MAX, step=0.05,
                               tooltip="Blend weight among unmasked styles (relative), or the strength "
                                       "of a masked style in its region."),
                io.Float.Input("scale", default=1.0, min=SCALE_MIN, max=SCALE_MAX, step=0.05,
                               tooltip="Size of the style image relative to the output: below 1 gives "
                                       "smaller brush strokes, above 1 larger ones."),
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
    def validate_inputs(cls, layers, weight, scale):
        return first_problem(layers_problem(layers, "style"),
                             range_problem(weight, "weight", 0.0, TARGET_WEIGHT_MAX),
                             range_problem(scale, "scale", SCALE_MIN, SCALE_MAX))

    @classmethod
    def execute(cls, image, layers, weight, scale, mask=None, previous=None, style_mask=None):
        target = StyleTarget(image=image_to_core(image, "style image"), layers=parse_layers(layers, "style"),
                             weight=float(weight), scale=float(scale), mask=mask_to_core(mask, "style mask"),
                             source_mask=mask_to_core(style_mask, "style image mask"))
        # A new tuple: the upstream node's cached output is never modified.
        return io.NodeOutput(tuple(previous or ()) + (target,))


class LossSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        d = LossWeights()
        return io.Schema(
            node_id="NeuralStyleLossSettings",
            display_name="Neural Style: Loss Settings",
            category=CATEGORY,
            **search_aliases("NeuralStyleLossSettings"),
            description="Balance of the loss terms. Optional: Optimize uses these defaults without it.",
            inputs=[
                io.Float.Input("content_weight", default=d.content, min=0.0, max=CONTENT_MAX, step=0.1,
                               tooltip="How much the result must keep the photo's content."),
                io.Float.Input("style_weight", default=d.style, min=0.0, max=STYLE_MAX, step=1.0,
                               tooltip="How much the result must match the style; raise it for a "
                                       "stronger style."),
                io.Float.Input("tv_weight", default=d.tv, min=0.0, max=TV_MAX, step=0.0001, round=0.00001,
                               tooltip="Total variation: smooths high-frequency noise. 0 turns it off."),
                io.Float.Input("temporal_weight", default=d.temporal, min=0.0, max=TEMPORAL_MAX, step=1.0,
                               tooltip="For batches (video frames): how much each frame must agree with "
                                       "the previous stylised frame where the input did not change."),
            ],
            outputs=[Loss.Output(display_name="loss")],
        )

    @classmethod
    def validate_inputs(cls, content_weight, style_weight, tv_weight, temporal_weight):
        return first_problem(*(range_problem(v, name, 0.0, high) for v, name, high in (
            (content_weight, "content_weight", CONTENT_MAX), (style_weight, "style_weight", STYLE_MAX),
            (tv_weight, "tv_weight", TV_MAX), (temporal_weight, "temporal_weight", TEMPORAL_MAX))))

    @classmethod
    def execute(cls, content_weight, style_weight, tv_weight, temporal_weight):
        weights = LossWeights(content=float(content_weight), style=float(style_weight),
                              tv=float(tv_weight), temporal=float(temporal_weight))
        try:  # linked values skip validate_inputs
            check_loss_weights(weights)
        except StylizeError as e:
            raise NeuralStyleError(f"Neural Style Loss Settings: {e}") from None
        return io.NodeOutput(weights)
