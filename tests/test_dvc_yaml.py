"""dvc.yaml is what the stage declarations generate, and declares every file a stage's result depends on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from dits.stages import NAMES
from dits.stages.dvc import PLUGS, closure, dvc_yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_committed_dvc_yaml_is_what_the_declarations_generate():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(), "dvc.yaml is stale: run `dits stages --write`"


def test_dvc_yaml_has_one_entry_per_stage_module_in_order():
    modules = sorted(
        p.stem for p in (REPO / "dits" / "stages").glob("*.py") if p.stem not in ("stage", "dvc")
    )
    assert sorted(NAMES) == [m for m in modules if m != "__init__"]
    assert list(STAGES) == list(NAMES)


def _module_file(module: str) -> Path | None:
    path = REPO / module.replace(".", "/")
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


class _Imports(ast.NodeVisitor):
    """Collects ``dits`` imports, at the top or inside functions, but not under ``if TYPE_CHECKING:``."""

    def __init__(self) -> None:
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            self.generic_visit(node)
        else:
            for child in node.orelse:
                self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.found |= {a.name for a in node.names if a.name.split(".")[0] == "dits"}

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.split(".")[0] == "dits":
            self.found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}


def _imports(path: Path) -> set[str]:
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text()))
    return visitor.found


def _walk(start: Path) -> set[str]:
    """Every project file ``start`` imports, transitively; a module's package ``__init__`` runs too.

    Written apart from ``dits.stages.dvc``, so a mistake in the generator's walk cannot hide here.
    """
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen or path.suffix != ".py":
            continue
        seen.add(path)
        for module in _imports(path):
            parts = module.split(".")
            todo += [f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i])))]
        if re.search(r"""["']sql/""", path.read_text()):
            seen |= set((path.parent / "sql").glob("*.sql"))
    return {str(p.relative_to(REPO)) for p in seen}


CHOICES = [
    {"backend.name": name, "backend.launcher": launcher}
    for name in ("hf", "vllm")
    for launcher in ("local", "ray")
]


@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: f"{c['backend.name']}-{c['backend.launcher']}")
@pytest.mark.parametrize("name", NAMES)
def test_dvc_yaml_lists_every_module_a_stage_can_run(name, choice):
    """With the plugs set as ``choice``, the deps hold the stage's module and all it imports."""
    body = STAGES[name].get("do", STAGES[name])
    deps = [
        re.sub(r"\$\{([\w.]+)\}", lambda m: choice.get(m.group(1), m.group(0)), str(d)) for d in body["deps"]
    ]
    needed = _walk(REPO / "dits" / "stages" / f"{name}.py")
    for host, (param, template, _) in PLUGS.items():
        if host in needed:
            needed |= _walk(REPO / template.format(choice[param]))
    missing = sorted(needed - set(deps))
    assert missing == [], f"dvc.yaml: stage {name} can run {missing} but does not list them in deps"


def test_a_backend_or_launcher_module_is_a_dependency_only_through_its_template():
    for name in NAMES:
        files, _ = closure(f"dits/stages/{name}.py")
        assert not files & {"dits/backends/hf.py", "dits/backends/vllm.py", "dits/launch/ray.py"}, name


def test_bootstrap_depends_on_no_inference_code():
    files, plugs = closure("dits/stages/bootstrap.py")
    assert plugs == set()
    assert not any(f.startswith(("dits/backends/hf", "dits/backends/factory", "dits/toa/")) for f in files)


def test_the_walk_follows_imports_inside_functions_and_skips_typing_only_ones():
    files, plugs = closure("dits/stages/sample.py")
    assert "dits/seeds.py" in files and "dits/backends/factory.py" in plugs
    assert "dits/backends/stack.py" not in closure("dits/stages/select.py")[0]
