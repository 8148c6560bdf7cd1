"""The ``dits`` command: run a stage, query the tables with SQL, show the metrics, a tree, a diff."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dits.errors import DitsError

if TYPE_CHECKING:
    import duckdb

EPILOG_SQL = """examples:
  dits sql "SELECT iter, count(*), avg(reward) FROM dialogues GROUP BY iter"
  dits sql "SELECT model, task, avg(score) FROM eval GROUP BY ALL" --format csv
  dits sql "SELECT * FROM dialogues WHERE score = 1" -o good.parquet
"""

EPILOG_TREE = """examples:
  dits tree 0 --list                 tree ids of iteration 0, with node count and max depth
  dits tree 0 3f9a                   the tree whose id starts with 3f9a
  dits tree 1 3f9a0c21d4e5b6a7 --width 120
"""

EPILOG_DIFF = """examples:
  dits diff HEAD~1 HEAD --table pairs
  dits diff main WORKTREE --table selected --iter 0 --examples 10
  dits diff v1 v2 --table eval
  dvc exp run -n a03 -S select.alpha=0.3 && dits diff HEAD a03 --table selected

REV is a git revision (commit, branch, tag, HEAD~1), a DVC experiment name (`dvc exp show`
lists them) or WORKTREE (or .), the files on disk now. A table that does not exist at a
revision counts as empty. Revisions are read from the local DVC cache: on a fresh clone,
fetch them from a DVC remote first (`dvc fetch --all-commits`, `dvc exp pull REMOTE NAME`).
"""


EPILOG_EXPERIMENT = """examples:
  dits experiment direction --pairs 40          one step on clean vs swapped pairs: Δ SFT loss
  dits experiment label_noise --seeds 3         AUC of each estimator at finding swapped pairs
  dits experiment q_relation                    r(influence, Q) over the pipeline's tables
  dits experiment selection --iteration 0       DPO(0) by influence (γ 0, 1) vs q vs random

Results go to data/experiments/NAME/results.parquet, settings as columns. Query them with
  dits sql "SELECT * FROM 'data/experiments/label_noise/results.parquet'"
The other influence settings (step_lr, warm-up, LoRA) come from params.yaml's influence section.
"""


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: need 0 ≤ I < N")
    return i, n


def cmd_run(args: argparse.Namespace) -> None:
    path = Path("stages") / f"{args.stage}.py"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in Path("stages").glob("*.py")))
        raise DitsError(f"{path}: no such stage; known stages: {known or 'none (run from the repo root)'}")
    spec = importlib.util.spec_from_file_location(f"dits_stage_{args.stage}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # A stage that does not shard would run whole and write its full output under every shard.
    if args.shard != (0, 1) and getattr(module, "SHARDED", False) is not True:
        i, n = args.shard
        raise DitsError(
            f"{path}: --shard {i}/{n}: stage {args.stage} does not shard (a stage that does sets "
            "SHARDED = True); run it without --shard"
        )
    from dits.config import load_params

    module.main(load_params(args.params), args.iter, args.shard)


def cmd_sql(args: argparse.Namespace) -> None:
    import duckdb

    from dits.store import connect

    con = connect(args.data)
    try:
        rel = con.sql(args.query)
        if rel is None:
            return
        if args.output:
            rel.write_parquet(args.output)
            print(f"wrote {args.output}", file=sys.stderr)
            return
        frame = rel.pl()
    except duckdb.CatalogException as exc:
        views = _views(con)
        if not views:
            raise _no_tables(args.data, f"; the query failed: {str(exc).splitlines()[0]}") from None
        raise DitsError(f"sql: {str(exc).splitlines()[0]} (tables: {', '.join(sorted(views))})") from None
    except duckdb.Error as exc:
        raise DitsError(f"sql: {str(exc).splitlines()[0]}") from None
    if args.format == "csv":
        sys.stdout.write(frame.write_csv())
    elif args.format == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        _print_table(frame.columns, frame.rows())


def _print_table(columns, rows, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for row in rows:
        table.add_row(*("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    Console(width=200).print(table)


def cmd_show(args: argparse.Namespace) -> None:
    metrics = sorted((_iteration(p), p) for p in Path(args.metrics).glob("iter=*.json"))
    if not metrics:
        raise DitsError(f"{args.metrics}: no metrics yet (run `dvc repro`)")
    _print_table(
        ["iter", "task", "model", "score ± se", "n", "tokens/dialogue", "chance", "gain vs base (paired)"],
        [(k, *row) for k, path in metrics for row in _eval_rows(path)],
        title="test metrics",
    )
    import duckdb

    from dits.store import connect

    con = connect(args.data)
    views = _views(con)
    if not views:
        raise _no_tables(args.data)
    try:
        _print_search_counts(con, views)
        _print_cost(con, views, args.metrics)
    except duckdb.Error as exc:
        raise DitsError(f"{args.data}: a table of another shape: {str(exc).splitlines()[0]}") from None
    times = sorted(Path(args.metrics, "stages").glob("*.json"))
    if times:
        stage_rows = [(p.stem, f"{_stage_seconds(p):.1f}") for p in times]
        _print_table(["stage", "seconds"], stage_rows, title="stage times (last run)")


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


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Return the table views ``store.connect`` made: one per table directory with parts."""
    return {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def _no_tables(data: str, detail: str = "") -> DitsError:
    """Return the error for a tables directory that holds no table: nothing was run or pulled."""
    return DitsError(f"{data}: no tables yet; run `dvc repro` (or `dvc pull` from a DVC remote){detail}")


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
    _print_table(["iter", "task", "trees", "nodes", "pairs", "selected"], rows, title="search")


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
    _print_table(
        ["iter", "search s", "node tokens", "influence s", "groups", "val tokens", "episodes changed"],
        table,
        title="cost of data synthesis (all tasks)",
    )


def cmd_tree(args: argparse.Namespace) -> None:
    from rich.console import Console

    from dits import treeview

    nodes = treeview.read_nodes(args.data, args.iter)
    if args.list:
        trees = treeview.summary(nodes)
        _print_table(trees.columns, trees.rows(), title=f"trees of iteration {args.iter}")
        return
    tree = treeview.find_tree(nodes, args.tree_id, f"{args.data}/nodes/iter={args.iter}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=10_000)  # piped: one line per node, never wrapped
    console.print(treeview.render(tree, args.width))


def cmd_diff(args: argparse.Namespace) -> None:
    from dits import diff

    result = diff.diff(args.table, args.rev_a, args.rev_b, args.iter)
    print(diff.report(result, args.rev_a, args.rev_b, args.examples))


def cmd_experiment(args: argparse.Namespace) -> None:
    from dits.config import load_params
    from dits.influence.experiments import Profile, run_experiment
    from dits.stage import setup

    params = load_params(args.params)
    setup(params)
    profile = Profile(
        pairs=args.pairs,
        seeds=tuple(range(args.seeds)),
        group_sizes=tuple(args.group_sizes),
        decodings=tuple(args.decodings),
        val_episodes=args.val,
        crn_seeds=args.crn_seeds,
        step_lrs=tuple(args.step_lrs),
        iteration=args.iteration,
    )
    out = run_experiment(args.name, params, profile, Path(args.data), args.tag)
    import polars as pl

    frame = pl.read_parquet(out)
    _print_table(frame.columns, frame.rows(), title=f"{args.name} → {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dits",
        description="Influence-oriented tree search: synthesize, score, select and train on "
        "two-agent dialogues.",
        epilog="start with `dvc repro`, then `dits show` and `dits sql`.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run one pipeline stage (what dvc.yaml calls)",
        epilog="example:\n  dits run sample --iter 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("stage", help="stage name: a file stages/<name>.py")
    run.add_argument("--iter", type=int, default=0, help="iteration k (default 0)")
    run.add_argument(
        "--shard", type=_shard, default=(0, 1), help="I/N: one slice of a stage that shards (default 0/1)"
    )
    run.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    run.set_defaults(func=cmd_run)

    sql = sub.add_parser(
        "sql",
        help="query the tables with DuckDB SQL (one view per table)",
        epilog=EPILOG_SQL,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sql.add_argument("query", help="SQL over the views tasks, dialogues, eval, …; `iter` is a column")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("-o", "--output", help="write the result to this Parquet file instead")
    sql.add_argument("--data", default="data", help="tables directory (default data)")
    sql.set_defaults(func=cmd_sql)

    show = sub.add_parser(
        "show",
        help="print the test metrics of every iteration and model, and stage times",
        epilog="example:\n  dits show",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("--metrics", default="metrics", help="metrics directory (default metrics)")
    show.add_argument("--data", default="data", help="tables directory (default data)")
    show.set_defaults(func=cmd_show)

    tree = sub.add_parser(
        "tree",
        help="draw one search tree: speaker, Q, visits and message snippet of every node",
        epilog=EPILOG_TREE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tree.add_argument("iter", metavar="ITER", type=int, help="iteration k: reads data/nodes/iter=k")
    which = tree.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "tree_id", metavar="TREE_ID", nargs="?", help="tree id, or a prefix of it that is unique"
    )
    which.add_argument("--list", action="store_true", help="list the tree ids instead")
    tree.add_argument(
        "--width", type=int, default=60, help="message snippet length in characters (default 60)"
    )
    tree.add_argument("--data", default="data", help="tables directory (default data)")
    tree.set_defaults(func=cmd_tree)

    diff = sub.add_parser(
        "diff",
        help="added, removed and changed rows of a table between two git revisions",
        epilog=EPILOG_DIFF,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("rev_a", metavar="REV_A", help="the old revision")
    diff.add_argument("rev_b", metavar="REV_B", help="the new revision")
    diff.add_argument("--table", required=True, help="pairs, selected, nodes, dialogues, eval or tasks")
    diff.add_argument("--iter", type=int, help="compare one iteration only (default: all)")
    diff.add_argument("--examples", type=int, default=3, help="rows shown of each kind (default 3)")
    diff.set_defaults(func=cmd_diff)

    experiment = sub.add_parser(
        "experiment",
        help="evidence for the influence estimator: direction, label_noise, q_relation, selection",
        epilog=EPILOG_EXPERIMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    experiment.add_argument("name", choices=("direction", "label_noise", "q_relation", "selection"))
    experiment.add_argument("--pairs", type=int, default=100, help="pairs per task (default 100)")
    experiment.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    experiment.add_argument("--group-sizes", type=int, nargs="+", default=[1, 5], help="default 1 5")
    experiment.add_argument(
        "--decodings", nargs="+", choices=("greedy", "crn"), default=["greedy", "crn"], help="default both"
    )
    experiment.add_argument("--val", type=int, default=50, help="validation questions V (default 50)")
    experiment.add_argument("--crn-seeds", type=int, default=2, help="S under crn decoding (default 2)")
    experiment.add_argument(
        "--step-lrs", type=float, nargs="+", default=[5e-5, 1e-3, 1e-2], help="direction only"
    )
    experiment.add_argument(
        "--iteration", type=int, default=0, help="whose SFT model and samples (default 0)"
    )
    experiment.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    experiment.add_argument(
        "--tag", help="write to data/experiments/NAME-TAG/ (keeps runs of other settings)"
    )
    experiment.add_argument("--data", default="data", help="tables directory (default data)")
    experiment.set_defaults(func=cmd_experiment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DitsError as exc:
        print(f"dits: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
