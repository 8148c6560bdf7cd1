"""A stage's units of work, run where ``backend.launcher`` says: ``dits.launch.local`` or ``.ray``.

Each launcher's ``submit(work, params, todo)`` makes sure every unit of ``todo`` is finished in
``work`` (computed in this process, or as one Ray task each); ``units`` then reads all of them back
in the given order, so the stage's output is the same union of parts on every launcher.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from dits.config import Params
from dits.storage.resume import Work

Tables = Callable[[], dict[str, pl.DataFrame]]
Value = Callable[[], Any]
Todo = list[tuple[str, str, Callable[[], Any]]]


def units(
    work: Work,
    params: Params,
    *,
    tables: Mapping[str, Tables] | None = None,
    values: Mapping[str, Value] | None = None,
) -> dict[str, Any]:
    """Return each unit's result by name: its tables (``tables``) or its JSON value (``values``).

    Values come first when run locally; on Ray all units of one call run at once, so a unit that
    needs another's result (the search's parts need T_max) goes in a later call.
    """
    tables, values = dict(tables or {}), dict(values or {})
    if both := tables.keys() & values.keys():
        raise ValueError(f"{work.name}: units named both as tables and as values: {sorted(both)}")
    todo = [*(("value", n, c) for n, c in values.items()), *(("tables", n, c) for n, c in tables.items())]
    # The launcher's module is imported by name, so a stage's code is only the launcher it runs on
    # (dvc.yaml: dits/launch/${backend.launcher}.py).
    importlib.import_module(f"dits.launch.{params.backend.launcher}").submit(work, params, todo)
    done: dict[str, Any] = {name: work.value(name, compute) for name, compute in values.items()}
    return done | {name: work.tables(name, compute) for name, compute in tables.items()}
