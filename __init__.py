"""ComfyUI entry point of the Neural Style node pack (Gatys et al. neural style transfer).

ComfyUI imports this file as a package from custom_nodes/ and calls ``comfy_entrypoint``.
The algorithm lives in ``nst_core`` (plain torch, no ComfyUI); ``nodes`` adapts it.
"""
from comfy_api.latest import ComfyExtension, io

from .nodes import NODE_CLASSES, register_model_folder


class NeuralStyleExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> NeuralStyleExtension:
    register_model_folder()
    return NeuralStyleExtension()
