"""dvc.yaml declares every file a stage's result depends on, so an unchanged lock means unchanged results."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_file(module: str) -> Path | None:
    path = REPO / module.replace(".", "/")
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imports(path: Path) -> set[str]:
    """Every ``dits`` module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dits"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dits":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _data_files(path: Path) -> set[Path]:
    """Files of the package a module reads by name (``sql/select.sql``): ``Path(__file__)...`` reads."""
    text = path.read_text()
    return {path.parent / m for m in re.findall(r'"(\w+/[\w.]+\.sql)"', text)}


def code_closure(stage_file: Path) -> set[str]:
    """Every file of the project that ``stage_file`` imports, transitively, relative to the repo."""
    seen: set[Path] = set()
    todo = [stage_file]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix != ".py":
            continue
        todo += [f for m in _imports(path) if (f := _module_file(m))]
        todo += [f for f in _data_files(path) if f.is_file()]
    return {str(p.relative_to(REPO)) for p in seen}


def _declared(deps: list[str], path: str) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_dvc_yaml_lists_every_module_a_stage_imports(name):
    body = STAGES[name].get("do", STAGES[name])
    stage = re.search(r"dits run (\w+)", body["cmd"]).group(1)
    deps = [str(d) for d in body["deps"]]
    missing = sorted(p for p in code_closure(REPO / "stages" / f"{stage}.py") if not _declared(deps, p))
    assert missing == [], f"dvc.yaml: stage {name} imports {missing} but does not list them in deps"


def test_the_import_walk_follows_imports_inside_functions(tmp_path):
    assert "dits/backends/hf.py" in code_closure(REPO / "stages" / "sample.py")
    assert "dits/seeds.py" in code_closure(REPO / "stages" / "sample.py")
