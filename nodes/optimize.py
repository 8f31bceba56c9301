"""The Optimize node: runs nst_core.stylize on ComfyUI's device with progress, previews and cancel."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from functools import partial
from typing import Optional

import torch

import comfy.model_management as mm
import comfy.utils
from comfy_api.latest import io

from ..nst_core import (ContentTarget, LossWeights, Options, VideoOptions, check_numbers, check_result,
                        drop_runtime_copy, stylize, tiled_2x2, to_pil)
from .common import (CATEGORY, Content, Loss, Model, NeuralStyleError, Settings, Style, Video, core_to_image,
                     declared_inputs, declared_problem, declared_values, image_to_core)
from .plot import loss_plot, pil_to_image
from .progress import ProgressReporter, describe
from .search import search_aliases
from .settings import RunSettings

log = logging.getLogger(__name__)

PREVIEW_SIZE = 512


def _to(t: Optional[torch.Tensor], device) -> Optional[torch.Tensor]:
    """A fresh, ordinary (non-inference) copy on ``device``."""
    return None if t is None else t.detach().to(device=device, dtype=torch.float32).clone()


def _preview(image: torch.Tensor, seamless: bool = False):
    """A ProgressBar preview of ``image`` ([1, 3, H, W], 0..1); a seamless one tiled 2×2, so a seam
    would show."""
    pil = to_pil(tiled_2x2(image) if seamless else image)
    # The server fits previews into max_size, enlarging small ones: cap, never enlarge.
    return "JPEG", pil, min(PREVIEW_SIZE, max(pil.size))


def _memory_estimate(size: int, n_pixels_hint: int) -> int:
    """Rough bytes a run needs on the device: weights, VGG activations with their gradients, L-BFGS."""
    pixels = size * size if size > 0 else n_pixels_hint
    return int(200e6 + 8_000 * pixels + 256e6)


# The everyday controls on the node's face; the rest is on the optional settings nodes.
FACE = [(Options, "size"), (Options, "steps"), (LossWeights, "strength"), (Options, "style_loss"),
        (Options, "init"), (Options, "seed"), (Options, "color"), (Options, "seamless")]
# Inputs Optimize had until version 0.2, and where they are now.
MOVED = {**dict.fromkeys(("optimizer", "start_size", "precision", "preview_interval", "tile_size"),
                         "Optimize Settings"),
         **dict.fromkeys(("temporal", "flow", "long_term", "passes", "frame_steps"), "Video Settings")}


class Optimize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleOptimize",
            display_name="Neural Style: Optimize",
            category=CATEGORY,
            **search_aliases("NeuralStyleOptimize"),
            description="Gatys et al. neural style transfer: optimises an image to have the content of "
                        "'content' and the style of 'style', coarse to fine. Slow on a CPU: start small "
                        "(size 256, few steps). Optional settings nodes hold the rest: Loss Settings, "
                        "Optimize Settings, Video Settings.",
            inputs=[
                Model.Input("vgg", tooltip="The VGG from Neural Style: Load VGG."),
                Content.Input("content", tooltip="From Neural Style: Encode Content."),
                Style.Input("style", tooltip="From Neural Style: Encode Style (one or a chain of several)."),
                *declared_inputs(FACE),
                Loss.Input("loss", optional=True, tooltip="Optional: Neural Style: Loss Settings (the raw loss "
                                                          "weights)."),
                Settings.Input("settings", optional=True,
                               tooltip="Optional: Neural Style: Optimize Settings (optimiser, first scale, "
                                       "precision, tiles, previews)."),
                Video.Input("video", optional=True,
                            tooltip="Optional: Neural Style: Video Settings, for a batch of frames (optical "
                                    "flow, passes, long-term following)."),
                io.Image.Input("init_image", optional=True,
                               tooltip="Optional: the starting image for init = image (one per frame, or one "
                                       "for all)."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The stylised image (one per content frame)."),
                io.Image.Output(display_name="loss_plot", tooltip="Loss terms per iteration (log scale)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, **inputs):
        return declared_problem([Options, LossWeights], inputs)

    @classmethod
    def execute(cls, vgg, content, style, loss=None, settings=None, video=None, init_image=None, **face):
        if not isinstance(content, ContentTarget):
            raise NeuralStyleError("content: connect the output of a Neural Style: Encode Content node")
        styles = list(style) if isinstance(style, (list, tuple)) else []
        if not styles:
            raise NeuralStyleError("style: connect the output of a Neural Style: Encode Style node")
        _refuse_moved_inputs(cls.hidden.prompt, cls.hidden.unique_id)
        if face.get("init") == "image" and init_image is None:
            raise NeuralStyleError("init is 'image' but nothing is connected to init_image: connect an "
                                   "IMAGE there, or choose another init")
        run = settings if isinstance(settings, RunSettings) else RunSettings()
        opts = Options(**{**run.options, **declared_values(Options, face)},
                       video=video if isinstance(video, VideoOptions) else VideoOptions())
        weights = replace(loss if isinstance(loss, LossWeights) else LossWeights(), **declared_values(LossWeights, face))
        try:
            check_numbers(styles, weights, opts)
        except ValueError as e:
            raise NeuralStyleError(f"Neural Style Optimize: {e}") from None
        start = None if init_image is None else image_to_core(init_image, "init_image")
        return _run(vgg, replace(content, init_image=start), styles, weights, opts, run.preview_interval)


def _refuse_moved_inputs(prompt, unique_id) -> None:
    """A prompt written for version 0.2 sets inputs Optimize no longer has, which ComfyUI drops
    without a word: name them and where they went instead of running with other values."""
    inputs = ((prompt or {}).get(str(unique_id)) or {}).get("inputs") or {}
    stale = [k for k in inputs if k in MOVED]
    if stale:
        where = sorted({MOVED[k] for k in stale})
        raise NeuralStyleError(
            f"Neural Style Optimize: {', '.join(stale)} moved to the {' and '.join(where)} node(s) in version "
            "0.3; wire such a node into Optimize (or convert a saved workflow with tools/upgrade_workflow.py)")


def _run(vgg, content: ContentTarget, styles, weights: LossWeights, opts: Options, preview_interval: int):
    """The stylisation on ComfyUI's device, with progress, previews and cancel; the model goes back
    to the CPU afterwards."""
    device = mm.get_torch_device()
    reporter = ProgressReporter(comfy.utils.ProgressBar(opts.steps), preview_interval,
                                partial(_preview, seamless=opts.seamless))

    def on_step(info):
        reporter.step(info.iteration, info.total, info.image, lambda: describe(info))

    t0 = time.perf_counter()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            if device.type != "cpu":
                hw = content.image.shape[-2:]
                mm.free_memory(_memory_estimate(opts.size, int(hw[0] * hw[1])), device)
            vgg.to(device)
            c = replace(content, image=_to(content.image, device), mask=_to(content.mask, device),
                        init_image=_to(content.init_image, device))
            s = [replace(st, image=_to(st.image, device), mask=_to(st.mask, device)) for st in styles]
            result = stylize(vgg, c, s, weights, opts, callback=on_step,
                             interrupt=mm.throw_exception_if_processing_interrupted)
            reporter.finish()
            check_result(result.image)
            image = core_to_image(result.image, mm.intermediate_device())
        plot = pil_to_image(loss_plot(result.history, result.scale_starts))
    except NeuralStyleError:
        raise
    except torch.OutOfMemoryError:  # outside the loop (the core reports those itself)
        raise NeuralStyleError(
            f"Neural Style Optimize: out of memory on {device} at size {opts.size}. Lower 'size', set a "
            "tile size (Optimize Settings), or use precision bf16/fp16.") from None
    except ValueError as e:  # StylizeError, WeightsError, ImageError, a layer VGG16 lacks...
        raise NeuralStyleError(f"Neural Style Optimize: {e}") from None
    finally:
        vgg.to("cpu")
        if device.type != "cpu":   # its runtime copy (bf16/fp16 or channels_last) stays on the GPU otherwise
            drop_runtime_copy(vgg)
        c = s = result = None  # noqa: F841 - drop device tensors before emptying the cache
        mm.soft_empty_cache()
    log.info("Neural Style: %d×%d px, %d frame(s) in %.1f s on %s", image.shape[2], image.shape[1],
             image.shape[0], time.perf_counter() - t0, device)
    return io.NodeOutput(image, plot)
