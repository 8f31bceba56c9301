"""Fixtures for tests that run the pack inside a real ComfyUI.  See harness.py.

Session fixtures (ComfyUI is provisioned on first use; a provisioning failure fails the tests,
it never skips them):

* ``comfyui_dir``      -- Path of the provisioned ComfyUI tree.
* ``comfy_layout``     -- harness.Layout: temp custom_nodes/ (with ``comfyui-neural-style`` ->
                          repository root), models/vgg/, extra_model_paths.yaml.
* ``comfy``            -- harness.ComfyInProcess: ComfyUI loaded in this process with our pack
                          as a custom node (``comfy.execute_prompt``, ``comfy.object_info()``...).
* ``object_info``      -- ``comfy.object_info()``, what GET /object_info would answer.
* ``node_class_mappings`` -- ComfyUI's NODE_CLASS_MAPPINGS after loading every node.
* ``nst_pack``         -- ``comfy``, after asserting that our pack imported (fails with
                          ComfyUI's own log of the import error otherwise).
* ``comfy_server``     -- base URL (str) of a real ComfyUI server subprocess on 127.0.0.1.
* ``comfy_server_process`` -- the harness.ComfyServer behind it (log, is_running()).
* ``comfy_client``     -- harness.ComfyClient for ``comfy_server``.

Module names: tests/comfy is a package (see __init__.py), so pytest imports its modules as
``comfy.<name>`` and registers tests/comfy as ``comfy``, which would hide ComfyUI's own ``comfy``
package; the harness drops that placeholder before loading ComfyUI (the test modules are all
imported by then).  ``import harness`` works in test modules; other helper modules in this
directory are importable by their plain names too.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest


def _import_harness():
    """Register harness.py as the top-level module ``harness`` so that test modules can
    ``import harness`` under any import mode, without putting this directory on sys.path (that
    would expose this file as a top-level ``conftest`` and shadow tests/conftest.py)."""
    if "harness" in sys.modules:
        return sys.modules["harness"]
    path = Path(__file__).resolve().with_name("harness.py")
    spec = importlib.util.spec_from_file_location("harness", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["harness"]
        raise
    return module


harness = _import_harness()

# Helper modules next to the tests (e.g. `import nst_prompts`) are importable as top-level
# modules; appended, so nothing here shadows an installed or ComfyUI module.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

SERVER_START_TIMEOUT = float(os.environ.get("NST_COMFY_SERVER_TIMEOUT", "180"))


@pytest.fixture(scope="session")
def comfyui_dir() -> Path:
    try:
        return harness.provision_comfyui()
    except harness.comfyui_env.ProvisioningError as e:
        pytest.fail(f"could not provision ComfyUI (tools/comfyui_env.py): {e}", pytrace=False)


@pytest.fixture(scope="session")
def comfy_layout(tmp_path_factory) -> harness.Layout:
    return harness.make_layout(tmp_path_factory.mktemp("comfyui"))


@pytest.fixture(scope="session")
def comfy(comfyui_dir, comfy_layout) -> harness.ComfyInProcess:
    return harness.load_comfyui_inprocess(comfy_layout, comfy_layout.io_dirs("inprocess"))


@pytest.fixture(scope="session")
def object_info(comfy) -> dict:
    return comfy.object_info()


@pytest.fixture(scope="session")
def node_class_mappings(comfy) -> dict:
    return comfy.node_class_mappings


@pytest.fixture(scope="session")
def nst_pack(comfy) -> harness.ComfyInProcess:
    if not comfy.pack_loaded:
        pytest.fail(f"ComfyUI did not load our pack:\n{comfy.pack_load_report()}", pytrace=False)
    return comfy


@pytest.fixture(scope="session")
def comfy_server_process(comfyui_dir, comfy_layout):
    server = harness.ComfyServer(comfy_layout, comfy_layout.io_dirs("server"))
    try:
        server.start(timeout=SERVER_START_TIMEOUT)
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def comfy_server(comfy_server_process) -> str:
    return comfy_server_process.base_url


@pytest.fixture(scope="session")
def comfy_client(comfy_server) -> harness.ComfyClient:
    return harness.ComfyClient(comfy_server)
