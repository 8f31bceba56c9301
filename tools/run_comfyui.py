#!/usr/bin/env python
"""Run the provisioned ComfyUI's main.py with the given arguments.

    python tools/run_comfyui.py --cpu --listen 127.0.0.1 --port 8188 \
        --extra-model-paths-config my_paths.yaml

Equivalent to ``python <ComfyUI>/main.py ARGS`` (same ``sys.path[0]``, same ``__main__``), plus
the torchvision shim from tools/comfyui_env.py, installed as an import hook so that torch is
still first imported by main.py itself.  Provision first with ``python tools/comfyui_env.py``.
"""

from __future__ import annotations

import os
import runpy
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str]) -> None:
    sys.path.insert(0, _HERE)
    import comfyui_env

    sys.path.remove(_HERE)
    directory = comfyui_env.comfyui_dir()
    main_py = directory / "main.py"
    if not main_py.is_file():
        sys.exit(f"error: no ComfyUI at {directory}; run `{sys.executable} {os.path.join(_HERE, 'comfyui_env.py')}` first")
    comfyui_env.install_torchvision_shim(defer=True)
    # `python main.py` puts the script's directory first on sys.path: do the same.
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
        sys.path[0] = str(directory)
    else:
        sys.path.insert(0, str(directory))
    sys.argv = [str(main_py), *argv]
    runpy.run_path(str(main_py), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
