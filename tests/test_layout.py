"""The package layout: no import circles, and no arrow from a lower layer back up (docs/layout.md)."""

from __future__ import annotations

from pathlib import Path

from dits.stages.dvc import imports

REPO = Path(__file__).resolve().parents[1]
# Foundation first: a module imports from its own layer or an earlier one (packages by first part).
LAYERS = [
    {"__init__", "errors", "progress", "seeds", "metrics", "config", "paths"},
    {"storage"},
    {"tasks"},
    {"backends"},
    {"dialogue", "reward"},
    {"sample", "evaluate", "select"},
    {"train"},
    {"search", "influence", "embedded"},
    {"toa"},
    {"launch"},
    {"stages"},
    {"studies"},
    {"cli", "show", "diff", "treeview", "export", "datacheck", "plan"},
]
# The one arrow up: params.yaml's task names are checked against the task catalog, which is data.
ALLOWED = {("dits/config.py", "dits/tasks/catalog.py")}


def _layer(file: str) -> int:
    part = Path(file).relative_to("dits").parts[0].removesuffix(".py")
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _graph() -> dict[str, set[str]]:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "dits").rglob("*.py"))
    return {f: {g for g in imports(f) if g.endswith(".py") and not g.endswith("__init__.py")} for f in files}


def test_every_module_has_a_layer():
    for file in _graph():
        assert _layer(file) >= 0


def test_no_module_imports_from_a_later_layer():
    up = sorted(
        (f, g)
        for f, deps in _graph().items()
        for g in deps
        if _layer(g) > _layer(f) and (f, g) not in ALLOWED
    )
    assert up == []


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert circles == []
