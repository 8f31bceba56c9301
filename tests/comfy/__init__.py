# Makes tests/comfy a package, so that pytest loads its conftest.py as "comfy.conftest" and
# leaves tests/conftest.py registered as the top-level module "conftest" (pytest unregisters
# "conftest" whenever it loads a conftest.py that is not in a package).  The placeholder
# module "comfy" this creates is dropped by harness.py before ComfyUI's own comfy is imported.
