"""Helpers shared by the benchmarks: each path runs in a fresh process of the same script."""

from __future__ import annotations

import json
import subprocess
import sys

import torch


def run_isolated(script: str, path: str, label: str | None = None) -> dict:
    """Run ``script --path PATH`` with this run's arguments; return the JSON line it prints last.

    A process per path makes each peak memory (max RSS, GPU high-water mark) that path's own.
    """
    cmd = [sys.executable, script, "--path", path, *sys.argv[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"the {label or path} path failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def device_line(device: str) -> str:
    """``device: cuda (NVIDIA H200)`` or ``device: cpu``."""
    return f"device: {device}" + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else "")
