"""The prepared GPU measurement stays runnable: its CPU rehearsal (--smoke) completes every section,
on any CPU however slow (the rehearsal has no time budgets), and leaves bench/results/ alone."""
import hashlib
import json
import os
import subprocess
import sys

from testlib import ROOT

HEADLINE = ("nst_core_sha256", "gpu", "e2e_512x500_s", "cli_default_wall_s", "video_first_frame_s",
            "video_next_frame_s", "tiled_8192_peak_gib")


def test_gpu_check_smoke_runs_every_section(tmp_path):
    committed = _digest(ROOT / "bench" / "results" / "gpu")
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path))
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out,) = [p for p in tmp_path.iterdir() if p.name.startswith("gpu_check.")]   # the default: a temporary folder
    assert _digest(ROOT / "bench" / "results" / "gpu") == committed
    results = json.loads((out / "results.json").read_text())
    assert not list(_errors(results)), list(_errors(results))
    for section in ("syncs", "graph", "iteration", "launches", "end_to_end", "memory", "tiled", "correctness", "cli"):
        assert section in results, section
    for key in HEADLINE:
        assert key in results, key
    assert len(results["nst_core_sha256"]) == 64 and results["nst_core_sha256"] in proc.stdout
    assert all(e["passed"] for e in results["syncs"].values() if isinstance(e, dict) and "passed" in e)
    row = next(e for k, e in results["iteration"].items() if isinstance(e, dict) and "flags" in e)
    assert row["ours_eager"]["blocks"] >= 5 and row["flags"]["precision"] in ("fp32", "bf16")
    assert (out / "RESULTS.md").is_file() and (out / "default.png").is_file()


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def _errors(node, path="results"):
    """Every recorded error in the results, with where it is."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "error" and v:
                yield path, v
            else:
                yield from _errors(v, f"{path}.{k}")
