"""``dits show``: the metrics of every iteration and model, what synthesis cost, and stage times.

It shows one run: the iterations and tasks of the params file. A workspace keeps the outputs of
earlier runs that the current params no longer produce (the committed default's iterations 1 and 2
after a one-iteration run of your own, say); those are named as not shown, never mixed in.

Every field read from a metrics file is checked, so a file of another shape stops with one line
naming the file and the field instead of a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dits.errors import DitsError

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Scope:
    """The run ``dits show`` shows: the iterations and task names of one params file (None: all)."""

    iterations: frozenset[int] | None = None
    tasks: frozenset[str] | None = None

    def has(self, k: int | None = None, task: str | None = None) -> bool:
        return (k is None or self.iterations is None or k in self.iterations) and (
            task is None or self.tasks is None or task in self.tasks
        )

    def stage(self, name: str) -> bool:
        """Whether a stage instance (``sample@1``, ``toa_search``) belongs to this run."""
        return "@" not in name or self.has(int(name.rsplit("@", 1)[1]))


def print_table(columns, rows, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for row in rows:
        table.add_row(*("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    Console(width=200).print(table)


def show(metrics_dir: str, data: str, scope: Scope = Scope()) -> None:
    """Print the run's test metrics per iteration and model, search counts, cost and stage times."""
    found = sorted((_iteration(p), p) for p in Path(metrics_dir).glob("iter=*.json"))
    metrics = [(k, path) for k, path in found if scope.has(k)]
    if not metrics:
        if _print_toa(Path(metrics_dir), scope):  # only the TOA stages have run
            return
        raise DitsError(f"{metrics_dir}: no metrics yet for this run (run `dvc repro`)")
    rows = [(k, *row) for k, path in metrics for row in _eval_rows(path)]
    print_table(
        ["iter", "task", "model", "score ± se", "n", "tokens/dialogue", "chance", "gain vs base (paired)"],
        [row for row in rows if scope.has(task=row[1])],
        title="test metrics",
    )
    _print_hidden([str(path) for k, path in found if not scope.has(k)], rows, scope)
    import duckdb

    from dits.storage.store import connect

    con = connect(data)
    views = views_of(con)
    if not views:
        raise no_tables(data)
    try:
        _narrow(con, views, scope)
        _print_search_counts(con, views)
        _print_cost(con, views, metrics_dir)
    except duckdb.Error as exc:
        raise DitsError(f"{data}: a table of another shape: {str(exc).splitlines()[0]}") from None
    _print_writers(Path(data), scope)
    _print_toa(Path(metrics_dir), scope)
    times = [p for p in sorted(Path(metrics_dir, "stages").glob("*.json")) if scope.stage(p.stem)]
    if times:
        stage_rows = [(p.stem, f"{_stage_seconds(p):.1f}") for p in times]
        print_table(["stage", "seconds"], stage_rows, title="stage times (last run)")


def _print_hidden(files: list[str], rows: list[tuple], scope: Scope) -> None:
    """Say which results in the workspace belong to another run and are not shown."""
    tasks = sorted({row[1] for row in rows if not scope.has(task=row[1])})
    if files or tasks:
        what = [*files, *(f"task {t}" for t in tasks)]
        print(f"not shown, not of this run's params (an earlier run's outputs): {', '.join(what)}")


def _narrow(con: duckdb.DuckDBPyConnection, views: set[str], scope: Scope) -> None:
    """Replace each table view by its rows of this run's iterations and tasks."""
    for view in sorted(views):
        columns = {row[0] for row in con.sql(f'DESCRIBE "{view}"').fetchall()}
        where = []
        if scope.iterations is not None and "iter" in columns:
            where.append(f"iter IN ({', '.join(str(k) for k in sorted(scope.iterations))})")
        if scope.tasks is not None and "task" in columns:
            where.append(f"task IN ({', '.join(_sql_text(t) for t in sorted(scope.tasks))})")
        if where:
            con.execute(f'ALTER VIEW "{view}" RENAME TO "all_{view}"')
            con.execute(f'CREATE VIEW "{view}" AS SELECT * FROM "all_{view}" WHERE {" AND ".join(where)}')


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


EVAL_FIELDS = ("score", "score_se", "n", "tokens", "chance")


def _iteration(path: Path) -> int:
    """Return k of a metrics file named ``iter=<k>.json``."""
    try:
        return int(path.stem.split("=", 1)[1])
    except ValueError:
        raise DitsError(f"{path}: expected a name iter=<k>.json with an integer k") from None


def _eval_rows(path: Path) -> list[tuple]:
    """Return one row per task and model of an evaluate metrics file, every field checked.

    The file is the evaluate stage's, but one of another shape (an older layout, a hand edit)
    has to stop with the file and the field, not with a KeyError.
    """
    top = _object(_read_json(path), path, "")
    if "eval" not in top:
        raise DitsError(f"{path}: eval: missing; expected {{task: {{model: {{{', '.join(EVAL_FIELDS)}}}}}}}")
    rows = []
    for task, models in _object(top["eval"], path, "eval").items():
        for model, entry in _object(models, path, f"eval.{task}").items():
            prefix = f"eval.{task}.{model}."
            entry = _object(entry, path, prefix.rstrip("."))
            score, se, n, tokens, chance = (_number(entry, key, path, prefix) for key in EVAL_FIELDS)
            gain = ""
            if "gain_over_base" in entry:
                gain_se = _number(entry, "gain_over_base_se", path, prefix)
                gain = f"{_number(entry, 'gain_over_base', path, prefix):+.3f} ± {gain_se:.3f}"
            rows.append((task, model, f"{score:.3f} ± {se:.3f}", n, f"{tokens:.1f}", f"{chance:.3f}", gain))
    return rows


def _stage_seconds(path: Path) -> float:
    """Return the wall time recorded in a ``metrics/stages/<name>.json`` file."""
    return _number(_object(_read_json(path), path, ""), "seconds", path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DitsError(f"{path}: not JSON ({exc})") from None


def _object(value: Any, path: Path, name: str) -> dict:
    """Return ``value`` if it is a JSON object; ``name`` is its dotted key in ``path``."""
    if not isinstance(value, dict):
        raise DitsError(f"{path}: {name or 'top level'} = {_json_text(value)}: expected an object")
    return value


def _number(entry: dict, key: str, path: Path, prefix: str = "") -> float:
    """Return ``entry[key]`` if it is a number; ``prefix + key`` is its dotted key in ``path``."""
    if key not in entry:
        raise DitsError(f"{path}: {prefix}{key}: missing; expected a number")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DitsError(f"{path}: {prefix}{key} = {_json_text(value)}: expected a number")
    return value


def _json_text(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


def views_of(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Return the table views ``store.connect`` made: one per table directory with parts."""
    return {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def no_tables(data: str, detail: str = "") -> DitsError:
    """Return the error for a tables directory that holds no table: nothing was run or pulled."""
    return DitsError(f"{data}: no tables yet; run `dvc repro` (or `dvc pull` from a DVC remote){detail}")


def _print_toa(metrics: Path, scope: Scope) -> bool:
    """Print TOA's results, if its stages ran: each model's test score, then the budget curves."""
    path = metrics / "toa" / "eval.json"
    if path.exists():
        results = _object(_read_json(path), path, "")
        if "skipped" in results:
            print(results["skipped"])
            return True
        rows = []
        for task, models in results.items():
            if not scope.has(task=task):
                continue
            for model, entry in _object(models, path, task).items():
                entry = _object(entry, path, f"{task}.{model}")
                score = _number(entry, "score", path, f"{task}.{model}.")
                se = entry.get("score_se")
                diff = next((k for k in entry if k.startswith("diff_vs_") and not k.endswith("_se")), None)
                paired = (
                    f"{entry[diff]:+.3f} ± {entry[diff + '_se']:.3f}"
                    if diff and entry[diff] is not None
                    else ""
                )
                rows.append((task, model, f"{score:.3f} ± {se or 0:.3f}", entry.get("n"), paired))
        print_table(
            ["task", "model", "score ± se", "n", "paired diff vs toa-dpo"], rows, title="TOA: test scores"
        )
    curves = metrics / "toa" / "curves.csv"
    if curves.exists():
        import polars as pl

        table = pl.read_csv(curves).select(
            "task", "method", "n", "generations", "tokens", "best_reward", "best_score", "best_score_se"
        )
        if scope.tasks is not None:
            table = table.filter(pl.col("task").is_in(sorted(scope.tasks)))
        print_table(table.columns, table.rows(), title="TOA: budget curves (per question)")
    return path.exists() or curves.exists()


def _print_writers(data: Path, scope: Scope) -> None:
    """Which inference backend wrote each table's iterations (the parts' ``dits.backend`` metadata)."""
    from dits.storage.store import writer

    rows = []
    for folder in sorted(p for p in data.glob("*/iter=*") if p.is_dir() and scope.has(_iteration(p))):
        backends = sorted({writer(part).get("backend", "") for part in folder.glob("part-*.parquet")})
        if backends and backends != [""]:
            rows.append((folder.parent.name, _iteration(folder), ", ".join(b or "?" for b in backends)))
    if rows:
        rows.sort(key=lambda row: (row[0], row[1]))
        print_table(["table", "iter", "backend"], rows, title="inference backend of each table")


def _print_search_counts(con: duckdb.DuckDBPyConnection, views: set[str]) -> None:
    """Trees, nodes, pairs and selected pairs per iteration and task, from the tables themselves."""
    if not {"nodes", "pairs"} <= views:
        return
    selected = (
        "(SELECT count(*) FROM selected s WHERE s.iter = n.iter AND s.task = n.task)"
        if "selected" in views
        else "NULL"
    )
    rows = con.sql(
        f"""
        SELECT iter, task, count(DISTINCT tree_id) AS trees, count(*) AS nodes,
               (SELECT count(*) FROM pairs p WHERE p.iter = n.iter AND p.task = n.task) AS pairs,
               {selected} AS selected
        FROM nodes n GROUP BY iter, task ORDER BY iter, task
        """
    ).fetchall()
    print_table(["iter", "task", "trees", "nodes", "pairs", "selected"], rows, title="search")


def _print_cost(con: duckdb.DuckDBPyConnection, views: set[str], metrics: str) -> None:
    """What data synthesis cost per iteration: the search stage beside the influence stage.

    Seconds are the stages' wall times of the last run (``metrics/stages``), setup included, so
    the two are comparable; node tokens are the messages the search kept as tree nodes (its
    rollouts generate more). Influence adds its validation tokens and the share of validation
    episodes whose outcome a one-step perturbation changed, the quantity that decides whether
    influence carries any signal.
    """
    if not {"nodes", "influence"} <= views:
        return
    rows = con.sql(
        """
        WITH search AS (
            SELECT iter, sum(tokens) AS s_tok FROM nodes GROUP BY ALL
        ), groups AS (
            SELECT DISTINCT iter, task, group_id, val_tokens, val_episodes, changed_episodes
            FROM influence WHERE estimator = 'finite_difference'
        ), influence AS (
            SELECT iter, count(*) AS groups, sum(val_tokens) AS i_tok,
                   sum(changed_episodes) / sum(val_episodes) AS changed
            FROM groups GROUP BY ALL
        )
        SELECT iter, s_tok, groups, i_tok, changed
        FROM search LEFT JOIN influence USING (iter) ORDER BY iter
        """
    ).fetchall()

    def stage_seconds(stage: str) -> str:
        path = Path(metrics, "stages", f"{stage}.json")
        return f"{_stage_seconds(path):.1f}" if path.exists() else ""

    table = [
        (
            k,
            stage_seconds(f"search@{k}"),
            tok,
            stage_seconds(f"influence@{k}"),
            groups,
            i_tok,
            "" if changed is None else f"{changed:.3f}",
        )
        for k, tok, groups, i_tok, changed in rows
    ]
    print_table(
        ["iter", "search s", "node tokens", "influence s", "groups", "val tokens", "episodes changed"],
        table,
        title="cost of data synthesis (all tasks)",
    )
