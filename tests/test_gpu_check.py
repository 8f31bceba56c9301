"""The prepared GPU measurement stays runnable: its CPU rehearsal (--smoke) completes every section."""
import json
import os
import subprocess
import sys

from testlib import ROOT


def test_gpu_check_smoke_runs_every_section(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert not list(_errors(results)), list(_errors(results))
    for section in ("iteration", "end_to_end", "memory", "tiled", "correctness", "cli"):
        assert section in results, section
    assert (tmp_path / "RESULTS.md").is_file() and (tmp_path / "default.png").is_file()


def _errors(node, path="results"):
    """Every recorded error in the results, with where it is."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "error" and v:
                yield path, v
            else:
                yield from _errors(v, f"{path}.{k}")
