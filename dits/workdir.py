"""Resumable stages: finished parts wait in ``.dits/work/<stage>/<inputs-hash>/`` (DESIGN §4).

DVC deletes a stage's outputs before it reruns, so parts that must survive a kill live outside
them until the whole set is done. The inputs hash covers the params the stage reads, its input
files and the code, so a stale part is never reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

WORK = Path(".dits") / "work"


def inputs_hash(params: object, files: Iterable[Path]) -> str:
    """Return a short hash of ``params`` (JSON-able) and the bytes of ``files`` (dirs recursed)."""
    digest = hashlib.blake2b(json.dumps(params, sort_keys=True, default=str).encode(), digest_size=8)
    for root in files:
        paths = (
            sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        )
        for path in paths:
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def work_dir(stage: str, k: int, key: str) -> Path:
    path = WORK / stage / f"iter={k}" / key
    path.mkdir(parents=True, exist_ok=True)
    return path
