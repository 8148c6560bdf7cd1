"""``backend.launcher: local``: a stage's units run in this process, one after another."""

from __future__ import annotations

from dits.config import Params
from dits.launch.units import Todo
from dits.storage.resume import Work


def submit(work: Work, params: Params, todo: Todo) -> None:
    """Compute every unit of ``todo`` an earlier run did not finish, in order (values come first)."""
    for kind, name, compute in todo:
        getattr(work, kind)(name, compute)
