"""Fixtures shared by test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_pipeline import _make_repo, _run

from dits.config import BootstrapParams
from dits.embedded.bootstrap import build_model, make_tokenizer, scripted_chats
from dits.embedded.scripts import Noise
from dits.storage.atomic import save_model
from dits.tasks.registry import get_task

TINY = BootstrapParams(seed=0, hidden_size=32, layers=1, heads=2, intermediate_size=64, vocab_size=400)


@pytest.fixture(scope="session")
def repro(tmp_path_factory) -> Path:
    """tests/test_pipeline.py's tiny pipeline in a fresh git repo after `dvc repro`, once a session.

    test_pipeline.py checks its tables; test_readme.py runs the README's blocks in a copy of it.
    """
    repo = _make_repo(tmp_path_factory.mktemp("run1"))
    result = _run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny embedded-style model saved to a directory (as a stage's fit loads it), and its chats."""
    torch.manual_seed(0)
    chats = scripted_chats([get_task("synthetic-exchange", 0)], 8, 0, Noise())[:16]
    tokenizer = make_tokenizer(chats, TINY)
    path = tmp_path_factory.mktemp("base") / "model"
    save_model(build_model(tokenizer, TINY), tokenizer, path)
    return path, chats
