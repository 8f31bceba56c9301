"""The example workflows that put neural style inside a Stable Diffusion graph, run for real.

No model is downloaded: ComfyUI's own stock nodes (Load Checkpoint, CLIP Text Encode, KSampler, VAE
Encode/Decode) load and run a tiny SD 1.5 checkpoint with random weights that tiny_checkpoint.py
builds once into .cache/ (ComfyUI's model detection reads it as SD 1.5).  Its pictures are noise, so
what is checked is the graph: every node and input exists with the values the file ships, the
checkpoint is named with a download address the frontend offers, and each workflow runs end to end
at 64 px with pictures of the right size flowing through both halves.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import harness
import tiny_checkpoint
from nst_prompts import CHECKPOINT_LOADERS, WORKFLOWS, fit, loads_a_checkpoint, to_array

builder = harness._load_tool("build_diffusion_workflows")
frontend_check = harness._load_tool("check_workflows_in_frontend")
DIFFUSION_FILES = sorted(p for p in WORKFLOWS.glob("*.json") if loads_a_checkpoint(p))
SMALL = 64  # px: an 8x8 latent
# The download addresses and file types the frontend's Missing Models dialog offers a Download for
# (1.32.9's MissingModelsWarning); other addresses get only "Copy URL".
ALLOWED_SOURCES = ("https://civitai.com/", "https://huggingface.co/")
ALLOWED_SUFFIXES = (".safetensors", ".sft")


def _ui(path):
    return json.loads(path.read_text())


def _loaders(workflow):
    return [n for n in workflow["nodes"] if n["type"] in CHECKPOINT_LOADERS]


@pytest.fixture(scope="module")
def tiny_sd15(nst_pack) -> str:
    """The tiny checkpoint's file name, in a folder ComfyUI lists under checkpoints."""
    import folder_paths

    path = tiny_checkpoint.ensure()
    folder_paths.add_model_folder_path("checkpoints", str(path.parent))
    assert path.name in folder_paths.get_filename_list("checkpoints")
    return path.name


@pytest.fixture(scope="module")
def executor(nst_pack):
    """One executor for the module's runs: ComfyUI keeps the loaded checkpoint between them, as it
    does between a user's runs."""
    return nst_pack.new_executor()


def test_at_least_three_workflows_combine_neural_style_with_diffusion():
    assert len(DIFFUSION_FILES) >= 3
    for path in DIFFUSION_FILES:
        types = {n["type"] for n in _ui(path)["nodes"]}
        assert {"KSampler", "NeuralStyleOptimize", "MarkdownNote"} <= types, path.name
        assert types & {"VAEDecode"} and types & CHECKPOINT_LOADERS, path.name


def test_the_workflows_are_what_the_builder_writes(object_info):
    """tools/build_diffusion_workflows.py is their source: regenerate them with it, never by hand."""
    assert {p.stem for p in DIFFUSION_FILES} == set(builder.SPECS)
    for name in builder.SPECS:
        assert (WORKFLOWS / f"{name}.json").read_text() == builder.text(builder.build(name, object_info)), (
            f"{name}.json differs from what tools/build_diffusion_workflows.py writes: rerun it")


@pytest.mark.parametrize("path", DIFFUSION_FILES, ids=lambda p: p.stem)
def test_the_checkpoint_is_named_with_a_download_the_frontend_offers(path):
    workflow = _ui(path)
    top_level = {m["name"]: m for m in workflow.get("models") or []}
    note = next(n for n in workflow["nodes"] if n["type"] == "MarkdownNote")["widgets_values"][0]
    for loader in _loaders(workflow):
        name = loader["widgets_values"][0]
        (entry,) = [m for m in loader["properties"]["models"] if m["name"] == name]
        assert entry == top_level[name]
        assert entry["directory"] == "checkpoints"
        assert entry["url"].startswith(ALLOWED_SOURCES) and name.endswith(ALLOWED_SUFFIXES)
        assert entry["url"].split("?")[0].endswith("/" + name)
        assert name in note and "SD 1.5" in note, "the note names the model it expects"
    assert frontend_check.declared_models(workflow) == sorted(top_level)


def test_the_tiny_checkpoint_is_read_as_sd15_with_every_weight(tiny_sd15):
    """ComfyUI's model detection accepts it, and every module it builds gets its weights from the
    file (a missing key would leave that weight uninitialised)."""
    import comfy.sd
    import folder_paths
    from safetensors import safe_open

    path = folder_paths.get_full_path("checkpoints", tiny_sd15)
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True)
    assert type(model.model.model_config).__name__ == "SD15"
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
    unet = {"model.diffusion_model." + k for k in model.model.diffusion_model.state_dict()}
    first_stage = {"first_stage_model." + k for k in vae.first_stage_model.state_dict()}
    text = {k.replace("clip_l.", "cond_stage_model.", 1) for k in clip.cond_stage_model.state_dict()
            if not k.endswith((".logit_scale", "text_projection.weight"))}
    assert unet <= keys and first_stage <= keys and text <= keys
    assert sum(p.numel() for p in model.model.diffusion_model.parameters()) < 25e6


@pytest.mark.parametrize("path", DIFFUSION_FILES, ids=lambda p: p.stem)
def test_every_node_takes_the_values_the_workflow_ships(nst_pack, object_info, tiny_sd15, path):
    """ComfyUI's own validation of the prompt the frontend would queue, with only the checkpoint
    swapped for the tiny one: node types, input names, combo choices and ranges as shipped."""
    prompt = harness.ui_to_api(_ui(path), object_info)  # strict: widget counts match the nodes
    for node in prompt.values():
        if node["class_type"] in CHECKPOINT_LOADERS:
            node["inputs"]["ckpt_name"] = tiny_sd15
    v = nst_pack.validate_prompt(prompt)
    assert v.valid and not v.node_errors, (v.error, v.node_errors)


def _shrunk(prompt: dict, ckpt: str) -> dict:
    """The workflow at test size: 64 px, 2 sampler steps, 6 optimizer steps at one scale."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind in CHECKPOINT_LOADERS:
            inputs["ckpt_name"] = ckpt
        elif kind == "EmptyLatentImage":
            inputs.update(width=SMALL, height=SMALL)
        elif kind == "KSampler":
            inputs.update(steps=2)
        elif kind == "NeuralStyleOptimize":
            inputs.update(steps=6, size=SMALL)   # at or below the start size: one scale
    return prompt


def _only(prompt: dict, kind: str) -> str:
    (nid,) = [nid for nid, n in prompt.items() if n["class_type"] == kind]
    return nid


def _image(res, link) -> np.ndarray:
    """The IMAGE a node output holds, as [H, W, 3] float (first of the batch)."""
    return res.node_outputs(link[0])[link[1]][0][0].cpu().float().numpy()


@pytest.mark.parametrize("path", DIFFUSION_FILES, ids=lambda p: p.stem)
def test_the_workflow_runs_end_to_end_with_a_tiny_checkpoint(nst_pack, object_info, tiny_sd15, executor, path):
    prompt = _shrunk(harness.ui_to_api(_ui(path), object_info), tiny_sd15)
    res = nst_pack.execute_prompt(prompt, executor=executor)

    opt = prompt[_only(prompt, "NeuralStyleOptimize")]
    content_link = prompt[opt["inputs"]["content"][0]]["inputs"]["image"]
    style_link = prompt[opt["inputs"]["style"][0]]["inputs"]["image"]
    content, painted = _image(res, content_link), _image(res, [_only(prompt, "NeuralStyleOptimize"), 0])
    h, w = content.shape[:2]
    assert painted.shape[:2] == fit((w, h), SMALL)[::-1]
    assert np.isfinite(painted).all() and painted.std() > 0.02
    resized = to_array(_pil(content).resize(fit((w, h), SMALL)))
    assert np.abs(painted - resized).mean() > 0.02, "Optimize returned its content"
    # Which half feeds which: the generated picture reaches neural style as content or as style.
    decode = _only(prompt, "VAEDecode")
    generated = [link[0] for link in (content_link, style_link)].count(decode)
    refined_from = prompt[decode]["inputs"]["samples"][0]
    latent = prompt[prompt[refined_from]["inputs"]["latent_image"][0]]
    if latent["class_type"] == "VAEEncode":   # paint then refine: the painting is what is refined
        assert latent["inputs"]["pixels"] == [_only(prompt, "NeuralStyleOptimize"), 0]
        refined = _image(res, [decode, 0])
        assert refined.shape == painted.shape and np.abs(refined - painted).mean() > 0.02
    else:
        assert generated == 1 and content_link[0] != style_link[0]
        assert _image(res, [decode, 0]).shape[:2] == (SMALL, SMALL)
    saved = [img for nid in prompt if prompt[nid]["class_type"] == "SaveImage" for img in res.images(nid)]
    assert saved and all(img.size == fit((w, h), SMALL) and to_array(img).std() > 0.02 for img in saved)


def _pil(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8))
