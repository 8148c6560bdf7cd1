"""Atomic writes: a file or a directory appears whole at its path, or not at all.

Every write of a stage goes through ``atomic_path``. The temp copy is built under ``.dits/tmp/``,
outside ``data/`` and ``models/``, so a stage killed half-way leaves nothing partial among its
outputs, and the swap is a rename on the same file system. A SIGKILL skips every ``finally``, so
the temp dirs of dead processes are swept by ``sweep`` when a stage ends.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

TMP = Path(".dits") / "tmp"


def _tmp_root(dest: Path) -> Path:
    """``.dits/tmp`` when it shares a file system with ``dest`` (rename needs that), else beside ``dest``."""
    TMP.mkdir(parents=True, exist_ok=True)
    return TMP if os.stat(TMP).st_dev == os.stat(dest.parent).st_dev else dest.parent


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temp path to write ``dest``'s new content at; swap it in when the block succeeds.

    The temp path does not exist yet: write a file or create a directory there. A directory that
    replaces an existing one is swapped with two renames, so readers see the old or the new tree,
    never a mix; between the renames ``dest`` is briefly absent.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=_tmp_root(dest)))
    try:
        tmp = scratch / dest.name
        yield tmp
        if tmp.is_dir() and dest.exists():
            old = scratch / "old"
            os.rename(dest, old)
            os.rename(tmp, dest)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, value: object) -> None:
    write_text(path, json.dumps(value, indent=1) + "\n")


def sweep() -> None:
    """Remove the temp dirs of processes that are no longer alive (a SIGKILL leaves them)."""
    if not TMP.is_dir():
        return
    for entry in TMP.iterdir():
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_model(model, tokenizer, out: Path) -> None:
    """Save a model directory atomically: it appears whole at ``out`` or not at all."""
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def promote(models: Mapping[str, Path], out: Path) -> None:
    """Move finished model directories into ``out/<name>``, swapping ``out`` in as a whole."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, path in models.items():
            os.rename(path, tmp / name)
