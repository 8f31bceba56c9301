"""The ``models/vgg`` folder and a small cache of loaded VGG networks."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import torch

import folder_paths

from ..nst_core import DEFAULT, WEIGHT_EXTENSIONS, VGGFeatures, default_weights_path, load_vgg
from .common import NeuralStyleError

log = logging.getLogger(__name__)

FOLDER = "vgg"
DEFAULT_CHOICE = "default (original VGG19, offline)"
CONVENTIONS = ("auto", "caffe", "torchvision")
_CACHE_SIZE = 2
_cache: "OrderedDict[tuple, VGGFeatures]" = OrderedDict()


def register_model_folder() -> str:
    """Make ``models/vgg`` a model folder, keeping paths that extra_model_paths.yaml gave ``vgg``.

    Returns the default folder (created if missing, so users see where weights go)."""
    default_dir = os.path.join(folder_paths.models_dir, FOLDER)
    entry = folder_paths.folder_names_and_paths.get(FOLDER)
    paths = list(entry[0]) if entry else []
    exts = set(entry[1]) if entry else set()
    if default_dir not in paths:
        paths.insert(0, default_dir)
    folder_paths.folder_names_and_paths[FOLDER] = (paths, exts | set(WEIGHT_EXTENSIONS))
    try:
        os.makedirs(default_dir, exist_ok=True)
    except OSError as e:  # a read-only install still works with the built-in weights
        log.warning("could not create %s (%s); VGG weight files can still go in other vgg paths", default_dir, e)
    return default_dir


def weight_choices() -> list:
    """The Load VGG combo: the built-in weights first, then the files in the vgg folders."""
    try:
        files = folder_paths.get_filename_list(FOLDER)
    except KeyError:  # folder not registered (should not happen once the pack is loaded)
        files = []
    return [DEFAULT_CHOICE] + list(files)


def resolve(choice: str) -> Path:
    if choice == DEFAULT_CHOICE:
        return default_weights_path()
    full = folder_paths.get_full_path(FOLDER, choice)
    if full is None:
        dirs = ", ".join(folder_paths.get_folder_paths(FOLDER))
        raise NeuralStyleError(f"VGG weights {choice!r} not found in the vgg model folder(s) ({dirs}). "
                               "Put the file there and refresh the node list, or pick "
                               f"{DEFAULT_CHOICE!r}.")
    return Path(full)


def load_model(choice: str, pooling: str = "max", convention: str = "auto") -> VGGFeatures:
    """A VGG on the CPU (load_vgg builds it there), cached by (file, mtime, size, pooling, convention).

    Built outside inference mode: ComfyUI runs nodes under ``torch.inference_mode()``, and
    parameters created there could not take part in the optimisation's autograd graph."""
    path = resolve(choice)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, pooling, convention)
    model = _cache.get(key)
    if model is not None:
        _cache.move_to_end(key)
        log.debug("VGG cache hit: %s", path.name)
        return model
    with torch.inference_mode(False):
        model = load_vgg(DEFAULT if choice == DEFAULT_CHOICE else path, pooling=pooling,
                         convention=None if convention == "auto" else convention)
    log.info("loaded %s (%s, %s pooling, %s convention)", model.source, model.arch, pooling, model.convention)
    _cache[key] = model
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return model
