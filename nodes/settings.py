"""The optional settings nodes wired into Optimize: loss weights, how the optimisation runs, video.

Each shows nst_core's declared options (default, range, tooltip from one declaration); without
them Optimize runs at the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

from comfy_api.latest import io

from ..nst_core import LossWeights, Options, VideoOptions, check_fields, option
from .common import (CATEGORY, Loss, NeuralStyleError, Settings, Video, declared_inputs, declared_problem,
                     declared_values)
from .search import search_aliases

LOSS_INPUTS = [(LossWeights, n) for n in ("content", "style", "tv", "temporal")]
RUN_INPUTS = [(Options, n) for n in ("optimizer", "start_size", "precision", "tile_size", "lr", "history_size")]
VIDEO_INPUTS = [(VideoOptions, n) for n in ("temporal", "flow", "long_term", "passes", "frame_steps")]
PREVIEW_INTERVAL = 10


@dataclass
class RunSettings:
    """What Optimize Settings gives Optimize: option values, and how often a preview is sent."""
    options: Dict[str, object] = field(default_factory=dict)    # Options field -> value
    preview_interval: int = option(PREVIEW_INTERVAL, "Send a preview image every N iterations (0: progress only, "
                                                     "no previews).", low=0, high=10000)


def checked(make, what: str):
    """``make()``'s result with every declared option checked (linked values skip validate_inputs)."""
    value = make()
    try:
        check_fields(value)
    except ValueError as e:
        raise NeuralStyleError(f"Neural Style {what}: {e}") from None
    return value


class LossSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleLossSettings",
            display_name="Neural Style: Loss Settings",
            category=CATEGORY,
            **search_aliases("NeuralStyleLossSettings"),
            description="Balance of the loss terms, for experts. Optional: Optimize uses these defaults "
                        "without it; its style_strength is the everyday control.",
            inputs=declared_inputs(LOSS_INPUTS),
            outputs=[Loss.Output(display_name="loss")],
        )

    @classmethod
    def validate_inputs(cls, **inputs):
        return declared_problem([LossWeights], inputs)

    @classmethod
    def execute(cls, **inputs):
        return io.NodeOutput(checked(lambda: LossWeights(**declared_values(LossWeights, inputs)), "Loss Settings"))


class OptimizeSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleOptimizeSettings",
            display_name="Neural Style: Optimize Settings",
            category=CATEGORY,
            **search_aliases("NeuralStyleOptimizeSettings"),
            description="How Optimize runs: the optimiser, the first scale, the arithmetic, tiles for large "
                        "outputs, how often it shows a preview. Optional: the defaults suit most runs.",
            inputs=declared_inputs(RUN_INPUTS + [(RunSettings, "preview_interval")]),
            outputs=[Settings.Output(display_name="settings")],
        )

    @classmethod
    def validate_inputs(cls, **inputs):
        # **inputs turns ComfyUI's own min/max check off for every input, preview_interval too.
        return declared_problem([Options, RunSettings], inputs)

    @classmethod
    def execute(cls, **inputs):
        values = declared_values(Options, inputs)
        checked(lambda: Options(**values), "Optimize Settings")
        return io.NodeOutput(checked(lambda: RunSettings(values, **declared_values(RunSettings, inputs)),
                                     "Optimize Settings"))


class VideoSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleVideoSettings",
            display_name="Neural Style: Video Settings",
            category=CATEGORY,
            **search_aliases("NeuralStyleVideoSettings"),
            description="How Optimize stylises a batch of frames as a video: frames follow each other along "
                        "the optical flow. Optional: without it, video runs at these defaults.",
            inputs=declared_inputs(VIDEO_INPUTS),
            outputs=[Video.Output(display_name="video")],
        )

    @classmethod
    def validate_inputs(cls, **inputs):
        return declared_problem([VideoOptions], inputs)

    @classmethod
    def execute(cls, **inputs):
        return io.NodeOutput(checked(lambda: VideoOptions(**declared_values(VideoOptions, inputs)), "Video Settings"))
