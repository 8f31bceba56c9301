"""The Optimize node: runs nst_core.stylize on ComfyUI's device with progress, previews and cancel."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Optional

import torch

import comfy.model_management as mm
import comfy.utils
from comfy_api.latest import io

from ..nst_core import checks
from ..nst_core.image import to_pil
from ..nst_core.options import (COLOR_MODES, FLOWS, INITS, OPTIMIZERS, PRECISIONS, STYLE_LOSSES, ContentTarget,
                                LossWeights, Options)
from ..nst_core.runtime import drop_runtime_copy
from ..nst_core.transfer import stylize
from .convert import (CATEGORY, Content, Loss, Model, NeuralStyleError, Style, core_problem, core_to_image,
                      first_problem, image_to_core, range_problem)
from .plot import loss_plot, pil_to_image
from .progress import ProgressReporter

log = logging.getLogger(__name__)

PREVIEW_SIZE = 512
MAX_SIZE = 8192


def _to(t: Optional[torch.Tensor], device) -> Optional[torch.Tensor]:
    """A fresh, ordinary (non-inference) copy on ``device``."""
    return None if t is None else t.detach().to(device=device, dtype=torch.float32).clone()


def _preview(image: torch.Tensor):
    """A ProgressBar preview of ``image`` ([1, 3, H, W], 0..1)."""
    pil = to_pil(image)
    # The server fits previews into max_size, enlarging small ones: cap, never enlarge.
    return "JPEG", pil, min(PREVIEW_SIZE, max(pil.size))


def _memory_estimate(size: int, n_pixels_hint: int) -> int:
    """Rough bytes a run needs on the device: weights, VGG activations with their gradients, L-BFGS."""
    pixels = size * size if size > 0 else n_pixels_hint
    return int(200e6 + 8_000 * pixels + 256e6)


class Optimize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        d, w = Options(), LossWeights()
        return io.Schema(
            node_id="NeuralStyleOptimize",
            display_name="Neural Style: Optimize",
            category=CATEGORY,
            description="Gatys et al. neural style transfer: optimises an image to have the content of "
                        "'content' and the style of 'style', coarse to fine. Slow on a CPU: start small "
                        "(size 256, few steps).",
            inputs=[
                Model.Input("vgg", tooltip="The VGG from Neural Style: Load VGG."),
                Content.Input("content", tooltip="From Neural Style: Encode Content."),
                Style.Input("style", tooltip="From Neural Style: Encode Style (one or a chain of several)."),
                io.Combo.Input("init", options=list(INITS), default=d.init,
                               tooltip="Starting image: the content photo (fast, faithful), noise (more "
                                       "style, varies with the seed), the style's mean colour, or "
                                       "'image' (connect init_image)."),
                io.Combo.Input("optimizer", options=list(OPTIMIZERS), default=d.optimizer,
                               tooltip="lbfgs converges in fewer steps (the classic choice); adam uses "
                                       "less memory."),
                io.Int.Input("steps", default=d.steps, min=1, max=10000,
                             tooltip="Iterations at the first (coarsest) scale; each finer scale gets half "
                                     "as many (at least 20)."),
                io.Int.Input("size", default=d.size, min=0, max=MAX_SIZE,
                             tooltip="Long side of the output in pixels (at least 32); 0 keeps the "
                                     "content's own size. Time grows with the square of the size."),
                io.Int.Input("start_size", default=d.start_size, min=0, max=MAX_SIZE,
                             tooltip="Coarse-to-fine: the first scale's long side; sizes grow ×√2 up to "
                                     "'size'. 0 (or ≥ size) runs one scale only."),
                io.Int.Input("seed", default=d.seed, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=False,
                             tooltip="Seed of the noise used by the noise and style_mean inits."),
                io.Combo.Input("color", options=list(COLOR_MODES), default=d.color,
                               tooltip="Keep the photo's colours: luminance transfers style on brightness "
                                       "only; linear/histogram recolour the style image to the photo "
                                       "first. none: the painting's colours."),
                io.Boolean.Input("temporal", default=d.temporal,
                                 tooltip="For a batch of frames: start each frame from the previous result "
                                         "moved along the optical flow, and keep it where the flow is "
                                         "reliable (much less flicker); a scene cut starts afresh."),
                io.Combo.Input("precision", options=list(PRECISIONS), default=d.precision,
                               tooltip="VGG arithmetic: auto uses bf16 on GPUs that support it and on CPUs "
                                       "with AMX (recent Xeons: 3-4x faster there), fp32 otherwise. Loss "
                                       "values accumulate in fp32 either way."),
                io.Int.Input("preview_interval", default=10, min=0, max=10000,
                             tooltip="Send a preview image every N iterations (0: progress only, no "
                                     "previews)."),
                io.Int.Input("tile_size", default=d.tile_size, min=0, max=MAX_SIZE, optional=True,
                             tooltip="For outputs too large for the device's memory: the network runs in "
                                     "tiles of this size (at least 64 px; 0: off) while the whole image is "
                                     "optimised, so the result is the untiled one, without seams. Slower "
                                     "(each tile is seen with 96 px of context, twice): use large tiles."),
                io.Int.Input("frame_steps", default=d.frame_steps, min=0, max=10000, optional=True,
                             tooltip="For a batch of frames with temporal on: iterations for every frame "
                                     "after the first, which starts from the previous result at full size "
                                     "(0: as many as the last scale of the first frame gets)."),
                Loss.Input("loss", optional=True,
                           tooltip=f"Optional: Neural Style: Loss Settings (default content {w.content:g}, "
                                   f"style {w.style:g}, tv {w.tv:g}, temporal {w.temporal:g})."),
                io.Image.Input("init_image", optional=True,
                               tooltip="Optional: starting image for init = image (one per frame, or one "
                                       "for all)."),
                # New inputs go last: workflows address inputs by slot number.
                io.Float.Input("style_strength", default=w.strength, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip="Less or more of the painting, in even steps: 0.5 is the calibrated "
                                       "balance (keeps the photo, paints it); 0.25 lighter, 0.75 heavier. "
                                       "Multiplies the loss settings' style weight by 0.1 at 0 and 10 at 1."),
                io.Combo.Input("style_loss", options=list(STYLE_LOSSES), default=d.style_loss, optional=True,
                               tooltip="Which statistics of the painting to match: gram (Gatys et al., the "
                                       "classic look), gram_deep_ms (Gram at the shallow layers, mean and "
                                       "spread at the deep ones: fewer of the painting's objects, lighter "
                                       "style), mean_std (per-channel mean and spread: colour and "
                                       "contrast, lighter texture), w2 (mean and covariance, Wasserstein), "
                                       "sliced_w (whole feature distributions: crisp textures; not with "
                                       "tiles)."),
                io.Combo.Input("flow", options=list(FLOWS), default=d.flow, optional=True,
                               tooltip="For a batch of frames with temporal on: how each frame follows the "
                                       "last. dis (OpenCV's DIS optical flow: fast, the default) or farneback "
                                       "follow every moving thing; shift follows one camera pan only."),
                io.Int.Input("long_term", default=d.long_term, min=0, max=25, optional=True,
                             tooltip="For a batch of frames with temporal on: k > 1 also follows frames k, 2k "
                                     "and 4k back where the previous frame cannot (things that were hidden "
                                     "for a while keep their paint). 0: the previous frame only."),
                io.Int.Input("passes", default=d.passes, min=1, max=20, optional=True,
                             tooltip="For a batch of frames with temporal on: more passes over the clip, "
                                     "alternately backwards and forwards, each refining every frame for "
                                     "frame_steps iterations: steadier video, each pass adding about a later "
                                     "frame's time per frame."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The stylised image (one per content frame)."),
                io.Image.Output(display_name="loss_plot", tooltip="Loss terms per iteration (log scale)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, size, tile_size=0):
        # Taking these here turns off ComfyUI's own min/max check of them, so the range is checked too.
        return first_problem(range_problem(size, "size", 0, MAX_SIZE),
                             core_problem(checks.zero_or_at_least, size, "size", checks.MIN_SIZE,
                                          "the content's own size"),
                             range_problem(tile_size, "tile_size", 0, MAX_SIZE),
                             core_problem(checks.zero_or_at_least, tile_size, "tile_size", checks.MIN_TILE,
                                          "no tiling"))

    @classmethod
    def execute(cls, vgg, content, style, init, optimizer, steps, size, start_size, seed, color, temporal,
                precision, preview_interval, tile_size=0, frame_steps=0, loss=None, init_image=None,
                style_strength=0.5, style_loss="gram", flow="dis", long_term=0, passes=1):
        if not isinstance(content, ContentTarget):
            raise NeuralStyleError("content: connect the output of a Neural Style: Encode Content node")
        styles = list(style) if isinstance(style, (list, tuple)) else []
        if not styles:
            raise NeuralStyleError("style: connect the output of a Neural Style: Encode Style node")
        if init == "image" and init_image is None:
            raise NeuralStyleError("init is 'image' but nothing is connected to init_image: connect an "
                                   "IMAGE there, or choose another init")
        weights = replace(loss if isinstance(loss, LossWeights) else LossWeights(), strength=float(style_strength))
        try:
            checks.check_loss_weights(weights)
        except ValueError as e:
            raise NeuralStyleError(f"Neural Style Optimize: {e}") from None
        device = mm.get_torch_device()
        reporter = ProgressReporter(comfy.utils.ProgressBar(int(steps)), int(preview_interval), _preview)

        def on_step(info):
            reporter.step(info.iteration, info.total, info.image)

        t0 = time.perf_counter()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                if device.type != "cpu":
                    hw = content.image.shape[-2:]
                    mm.free_memory(_memory_estimate(int(size), int(hw[0] * hw[1])), device)
                vgg.to(device)
                c = replace(content, image=_to(content.image, device), mask=_to(content.mask, device))
                s = [replace(st, image=_to(st.image, device), mask=_to(st.mask, device)) for st in styles]
                opts = Options(size=int(size), steps=int(steps), start_size=int(start_size), optimizer=optimizer,
                               init=init, seed=int(seed), color=color, temporal=bool(temporal),
                               precision=precision, tile_size=int(tile_size), frame_steps=int(frame_steps),
                               style_loss=style_loss, flow=flow, long_term=int(long_term),
                               passes=int(passes),
                               init_image=None if init_image is None else _to(image_to_core(init_image, "init_image"), device))
                result = stylize(vgg, c, s, weights, opts, callback=on_step,
                                 interrupt=mm.throw_exception_if_processing_interrupted)
                reporter.finish()
                checks.check_result(result.image)
                image = core_to_image(result.image, mm.intermediate_device())
            plot = pil_to_image(loss_plot(result.history, result.scale_starts))
        except NeuralStyleError:
            raise
        except torch.OutOfMemoryError:  # outside the loop (the core reports those itself)
            raise NeuralStyleError(
                f"Neural Style Optimize: out of memory on {device} at size {size}. Lower 'size', set "
                "'tile_size', or use precision fp16/bf16.") from None
        except ValueError as e:  # StylizeError, WeightsError, ImageError, a layer VGG16 lacks...
            raise NeuralStyleError(f"Neural Style Optimize: {e}") from None
        finally:
            vgg.to("cpu")
            if device.type != "cpu":   # its bf16/fp16 copy stays on the GPU otherwise
                drop_runtime_copy(vgg)
            c = s = opts = result = None  # noqa: F841 - drop device tensors before emptying the cache
            mm.soft_empty_cache()
        log.info("Neural Style: %d×%d px, %d frame(s) in %.1f s on %s", image.shape[2], image.shape[1],
                 image.shape[0], time.perf_counter() - t0, device)
        return io.NodeOutput(image, plot)
