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

# The modules that run whole pipelines, longest first: pytest-xdist (``-n 2 --dist loadgroup``) starts
# them before the short tests, which fill the other worker meanwhile.
END_TO_END = (
    "test_pipeline.py",  # before test_readme.py, which copies the run test_pipeline.py adds to
    "test_readme.py",
    "test_profile_8b.py",
    "test_real_model.py",
    "test_vllm_pipeline.py",
)
SHARED_RUN = {"test_pipeline.py": "repro", "test_readme.py": "repro"}  # modules of the session's `repro`


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Keep each module on one worker, so a module-scoped fixture (a pipeline run) runs once.

    The two modules that read the session's tiny pipeline run share a group, so it too runs once.
    Without xdist the markers do nothing and only the order changes.
    """
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group(SHARED_RUN.get(name, name)))
    rank = {name: i for i, name in enumerate(END_TO_END)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
