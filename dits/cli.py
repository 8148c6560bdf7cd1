"""The ``dits`` command: run a stage, query the tables with SQL, show the metrics."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from dits.errors import DitsError

EPILOG_SQL = """examples:
  dits sql "SELECT iter, count(*), avg(reward) FROM dialogues GROUP BY iter"
  dits sql "SELECT model, task, avg(score) FROM eval GROUP BY ALL" --format csv
  dits sql "SELECT * FROM dialogues WHERE score = 1" -o good.parquet
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
    metrics = sorted(Path(args.metrics).glob("iter=*.json"), key=lambda p: int(p.stem.split("=")[1]))
    if not metrics:
        raise DitsError(f"{args.metrics}: no metrics yet (run `dvc repro`)")
    rows = []
    for path in metrics:
        k = int(path.stem.split("=")[1])
        for task, models in json.loads(path.read_text())["eval"].items():
            for model, m in models.items():
                gain = m.get("gain_over_base")
                rows.append(
                    (
                        k,
                        task,
                        model,
                        f"{m['score']:.3f} ± {m['score_se']:.3f}",
                        m["n"],
                        f"{m['tokens']:.1f}",
                        f"{m['chance']:.3f}",
                        "" if gain is None else f"{gain:+.3f} ± {m['gain_over_base_se']:.3f}",
                    )
                )
    _print_table(
        ["iter", "task", "model", "score ± se", "n", "tokens/dialogue", "chance", "gain vs base (paired)"],
        rows,
        title="test metrics",
    )
    _print_search_counts(args.data)
    times = sorted(Path(args.metrics, "stages").glob("*.json"))
    if times:
        stage_rows = [(p.stem, f"{json.loads(p.read_text())['seconds']:.1f}") for p in times]
        _print_table(["stage", "seconds"], stage_rows, title="stage times (last run)")


def _print_search_counts(data: str) -> None:
    """Trees, nodes, pairs and selected pairs per iteration and task, from the tables themselves."""
    from dits.store import connect

    con = connect(data)
    views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
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
    run.add_argument("--shard", type=_shard, default=(0, 1), help="I/N: work on one slice (default 0/1)")
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
