"""A tiny Stable Diffusion 1.5 checkpoint with random weights, for running diffusion workflows offline.

ComfyUI 0.3.75 reads a checkpoint's architecture from its keys and tensor shapes
(``comfy/model_detection.py``) and calls it SD 1.5 when the UNet has 320 base channels, cross-attention
over 768-wide text features in convolutional (not linear) projections and no class embedding
(``comfy/supported_models.py: SD15``).  Everything else about the UNet is read from the file, so this
one keeps a single level with one residual block and one transformer block: 19 M parameters instead of
860 M.  The text encoder (CLIP ViT-L, ``comfy/sd1_clip_config.json``) and the VAE (``ch`` 128,
``ch_mult`` 1-2-4-4 in ``comfy/sd.py``) have fixed configurations whatever the file holds, so they are
full size (124 M and 84 M parameters): the file is about 450 MB in float16.

The keys come from ComfyUI's own modules (its UNet, CLIP and VAE classes), prefixed as in an SD 1.5
checkpoint (``model.diffusion_model.``, ``cond_stage_model.``, ``first_stage_model.``); the values
are seeded random numbers scaled so that activations stay finite (weights ~ N(0, 1/fan_in), norm
scales 1, biases 0).  The pictures it makes are noise; what it proves is that a workflow's graph
loads, samples, decodes and encodes through the real nodes.

Needs ComfyUI importable (the tests' in-process ComfyUI, see harness.py).  Built once and kept under
``.cache/tiny-sd15/`` with a stamp of :data:`RECIPE`; a changed recipe builds a new file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".cache" / "tiny-sd15"
SEED = 20250

# The UNet that model_detection.detect_unet_config reads back from the keys (see module docstring);
# num_heads / num_head_channels are SD15.unet_extra_config.
UNET_CONFIG = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "num_res_blocks": [1], "channel_mult": [1], "transformer_depth": [1], "transformer_depth_output": [1, 1],
    "transformer_depth_middle": -2, "use_linear_in_transformer": False, "context_dim": 768,
    "num_heads": 8, "num_head_channels": -1, "use_temporal_resblock": False, "use_temporal_attention": False,
}
# comfy/sd.py's VAE configuration for SD 1.x checkpoints (fixed there).
VAE_CONFIG = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
              "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
RECIPE = {"unet": UNET_CONFIG, "vae": VAE_CONFIG, "clip": "sd1_clip_config.json", "seed": SEED,
          "dtype": "float16", "init": "normal(0, 1/fan_in), norms 1, biases 0", "version": 1}
FILE_NAME = "tiny-sd15-random.safetensors"


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def _modules():
    """ComfyUI's own UNet, CLIP-L text encoder and VAE, weights unset (ComfyUI's ops skip init)."""
    import torch
    import comfy.sd1_clip
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return {
        "model.diffusion_model.": UNetModel(**UNET_CONFIG),
        "cond_stage_model.": comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32),
        "first_stage_model.": AutoencoderKL(ddconfig=dict(VAE_CONFIG), embed_dim=4),
    }


def _random_like(name: str, t, gen):
    import torch

    if not t.is_floating_point():
        return t.clone()
    if t.dim() >= 2:   # linear, conv and embedding weights: unit-variance outputs for unit inputs
        fan_in = t[0].numel()
        return torch.randn(t.shape, generator=gen) / fan_in ** 0.5
    if name.endswith("weight"):  # norm scales
        return torch.ones(t.shape)
    return torch.zeros(t.shape)  # biases, logit_scale


def state_dict() -> dict:
    """The checkpoint's tensors (float16), keyed as in an SD 1.5 checkpoint."""
    import torch

    gen = torch.Generator().manual_seed(SEED)
    out = {}
    for prefix, module in _modules().items():
        for name, t in module.state_dict().items():
            out[prefix + name] = _random_like(name, t, gen).to(torch.float16).contiguous()
        del module
    return out


def ensure(cache_dir: Path = CACHE_DIR) -> Path:
    """The checkpoint file, built on first use (a few seconds) and reused while the recipe is unchanged."""
    from safetensors.torch import save_file

    cache_dir = Path(cache_dir)
    path = cache_dir / FILE_NAME
    stamp = cache_dir / "recipe.sha"
    if path.is_file() and stamp.is_file() and stamp.read_text().strip() == recipe_hash():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    save_file(state_dict(), str(partial), metadata={"nst_tiny_recipe": recipe_hash()})
    os.replace(partial, path)
    stamp.write_text(recipe_hash() + "\n")
    return path
