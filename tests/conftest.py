"""Fixtures shared by test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_pipeline import _make_repo, _run


@pytest.fixture(scope="session")
def repro(tmp_path_factory) -> Path:
    """tests/test_pipeline.py's tiny pipeline in a fresh git repo after `dvc repro`, once a session.

    test_pipeline.py checks its tables; test_readme.py runs the README's blocks in a copy of it.
    """
    repo = _make_repo(tmp_path_factory.mktemp("run1"))
    result = _run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo
