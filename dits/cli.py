"""The ``dits`` command: run a stage, query the tables with SQL, show the metrics, a tree, a diff."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dits.errors import DitsError

if TYPE_CHECKING:
    pass

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
lists them) or WORKTREE (or workspace, .), the files on disk now. A table that does not exist at a
revision counts as empty. Revisions are read from the local DVC cache: on a fresh clone,
fetch them from a DVC remote first (`dvc fetch --all-commits`, `dvc exp pull REMOTE NAME`).
"""


EPILOG_EXPERIMENT = """examples:
  dits experiment direction --pairs 40          one step on clean vs swapped pairs: Δ SFT loss
  dits experiment label_noise --seeds 3         AUC of each estimator at finding swapped pairs
  dits experiment q_relation                    r(influence, Q) over the pipeline's tables
  dits experiment selection --iteration 0       DPO(0) by influence (γ 0, 1) vs q vs random
  dits experiment replicate --params profiles/study.yaml --seeds 5 --optima-rollouts 5
                                                the whole loop per ranking and seed, paired vs q

replicate runs each condition's iterated pipeline in data/experiments/replicate[-TAG]/runs/
(resumable: a rerun skips finished stages) and writes results.parquet, summary.parquet (95 %
intervals over seeds) and scores.csv (`dvc plots show data/experiments/replicate/scores.csv`).
Seeds can run on different machines and meet in one summary:
  dits experiment replicate ... --seeds 5 --only-seeds 3 4 --include elsewhere/results.parquet

Results go to data/experiments/NAME/results.parquet, settings as columns. Query them with
  dits sql "SELECT * FROM 'data/experiments/label_noise/results.parquet'"
The other influence settings (step_lr, warm-up, LoRA) come from params.yaml's influence section.
"""


EPILOG_EXPORT = """examples:
  dits export 0                           export/iter=0/sft.parquet and dpo.parquet
  dits export 1 --task hotpotqa --format jsonl -o out
  dits export 2 --format datasets         export/iter=2/sft and dpo, for datasets.load_from_disk

sft: one row per agent's view of each dialogue the sft stage trains on (messages, with task,
source_id, example_id, dialogue_id, agent, reward); dpo: the selected pairs (prompt, chosen,
rejected, with task, source_id, example_id, pair_id, q_chosen, q_rejected).
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
    from dits.stages import NAMES

    if args.stage not in NAMES:
        raise DitsError(f"{args.stage}: no such stage; known stages: {', '.join(NAMES)}")
    from dits.config import load_params
    from dits.stages.stage import run

    run(importlib.import_module(f"dits.stages.{args.stage}"), load_params(args.params), args.iter, args.shard)


def cmd_stages(args: argparse.Namespace) -> None:
    from dits.stages.dvc import dvc_yaml, stages

    if args.list:
        for stage in stages():
            writes = ", ".join(
                [*stage.outs, *stage.cached_in_git, *stage.metrics, *(p for p, _ in stage.plots)]
            )
            each = " (each iteration)" if stage.per_iteration else ""
            print(f"{stage.name}{each}: {writes}")
        return
    text, path = dvc_yaml(), Path("dvc.yaml")
    if args.write:
        path.write_text(text)
    elif args.check:
        if not path.exists() or path.read_text() != text:
            raise DitsError(f"{path}: not what the stage declarations generate; run `dits stages --write`")
    else:
        sys.stdout.write(text)


def cmd_sql(args: argparse.Namespace) -> None:
    import duckdb

    from dits.show import no_tables, print_table, views_of
    from dits.storage.store import connect

    con = connect(args.data)
    try:
        rel = con.sql(args.query)
        if rel is None:
            return
        if args.output:
            from dits.storage.atomic import atomic_path

            with atomic_path(args.output) as tmp:
                rel.write_parquet(str(tmp))
            print(f"wrote {args.output}", file=sys.stderr)
            return
        frame = rel.pl()
    except duckdb.CatalogException as exc:
        views = views_of(con)
        if not views:
            raise no_tables(args.data, f"; the query failed: {str(exc).splitlines()[0]}") from None
        raise DitsError(f"sql: {str(exc).splitlines()[0]} (tables: {', '.join(sorted(views))})") from None
    except duckdb.Error as exc:
        raise DitsError(f"sql: {str(exc).splitlines()[0]}") from None
    if args.format == "csv":
        sys.stdout.write(frame.write_csv())
    elif args.format == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        print_table(frame.columns, frame.rows())


def cmd_show(args: argparse.Namespace) -> None:
    from dits.show import Scope, show

    if args.all:
        show(args.metrics, args.data)
        return
    from dits.config import load_params

    params = load_params(args.params)
    ks, names = frozenset(it.k for it in params.iterations), frozenset(params.task.names)
    iterations = ", ".join(str(k) for k in sorted(ks))
    print(f"run of {args.params}: tasks {', '.join(sorted(names))}; iterations {iterations}")
    show(args.metrics, args.data, Scope(ks, names))


def cmd_tree(args: argparse.Namespace) -> None:
    from rich.console import Console

    from dits import treeview
    from dits.show import print_table

    nodes = treeview.read_nodes(args.data, args.iter)
    if args.list:
        trees = treeview.summary(nodes)
        print_table(trees.columns, trees.rows(), title=f"trees of iteration {args.iter}")
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
    if args.name == "replicate":
        return cmd_replicate(args)
    from dits.config import load_params
    from dits.launch.process import setup
    from dits.studies.validity import Profile, run_experiment

    params = load_params(args.params)
    setup(params)
    profile = Profile(
        pairs=args.pairs,
        seeds=tuple(range(args.seeds or 3)),
        group_sizes=tuple(args.group_sizes),
        decodings=tuple(args.decodings),
        val_episodes=args.val,
        crn_seeds=args.crn_seeds,
        step_lrs=tuple(args.step_lrs),
        iteration=args.iteration,
        source=args.source,
    )
    out = run_experiment(args.name, params, profile, Path(args.data), args.tag)
    import polars as pl

    from dits.show import print_table

    frame = pl.read_parquet(out)
    print_table(frame.columns, frame.rows(), title=f"{args.name} → {out}")


def cmd_replicate(args: argparse.Namespace) -> None:
    import polars as pl

    from dits.show import print_table
    from dits.studies import replicate

    chosen = [c.slug for c in replicate.RANKINGS] if args.conditions is None else args.conditions
    conditions = tuple(c for c in replicate.RANKINGS if c.slug in chosen)
    conditions += tuple(replicate.optima(r) for r in args.optima_rollouts or ())
    if not conditions:
        raise DitsError("replicate: no condition to run (--conditions names none and no --optima-rollouts)")
    name = f"replicate-{args.tag}" if args.tag else "replicate"
    seeds = tuple(range(args.seeds or 5))
    if args.only_seeds:
        outside = [s for s in args.only_seeds if s not in seeds]
        if outside:
            raise DitsError(f"--only-seeds {outside[0]}: not one of the seeds 0..{len(seeds) - 1}")
        seeds = tuple(args.only_seeds)
    study = replicate.Study(
        Path(args.params),
        seeds,
        conditions,
        Path(args.data) / "experiments" / name,
        args.jobs,
    )
    if not args.summary_only:
        study.run()
    paths = replicate.write_results(study, tuple(Path(p) for p in args.include or ()))
    summary = pl.read_parquet(paths["summary"]).filter(pl.col("model") == "dpo")
    print_table(summary.columns, summary.rows(), title=f"replicate → {paths['summary']}")


def cmd_export(args: argparse.Namespace) -> None:
    from dits.config import load_params
    from dits.export import export

    out = Path(args.output or f"export/iter={args.iter}")
    written = export(load_params(args.params), args.iter, Path(args.data), out, args.format, args.task)
    for path, rows in written.items():
        # Only the DPO set can be empty: the sft stage, and so the export, stops on no kept dialogue.
        empty = f"{path}: not written, no selected pair (DPO({args.iter}) is SFT({args.iter}))"
        print(f"wrote {path} ({rows} rows)" if rows else empty, file=sys.stderr)


def cmd_data(args: argparse.Namespace) -> None:
    from dits.config import Params, load_params
    from dits.datacheck import check, pool_lines

    params, source = (
        (load_params(args.params), args.params) if Path(args.params).exists() else (Params(), "the defaults")
    )
    for line in check(args.task, args.path, params, args.format == "json", args.records):
        print(line)
    if args.format == "text":
        print()
        for line in pool_lines(args.task, args.path, params, source):
            print(line)


def cmd_plan(args: argparse.Namespace) -> None:
    from dits.plan import main as plan_main

    for line in plan_main(args.params, args.model, args.gpu_gib, args.format):
        print(line)


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
    run.add_argument("stage", help="stage name (dits/stages/<name>.py); `dits stages --list` lists them")
    run.add_argument("--iter", type=int, default=0, help="iteration k (default 0)")
    run.add_argument(
        "--shard", type=_shard, default=(0, 1), help="I/N: one slice of a stage that shards (default 0/1)"
    )
    run.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    run.set_defaults(func=cmd_run)

    stages = sub.add_parser(
        "stages",
        help="dvc.yaml from the stage declarations (dits/stages/*.py): print, write or check it",
        epilog="examples:\n  dits stages --list\n"
        "  dits stages --write      after editing a STAGE declaration\n"
        "  dits stages --check      exit 1 when dvc.yaml differs from the declarations",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = stages.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help="write dvc.yaml")
    what.add_argument(
        "--check", action="store_true", help="fail when dvc.yaml is not what the declarations give"
    )
    what.add_argument(
        "--list", action="store_true", help="the stages in pipeline order, with what they write"
    )
    stages.set_defaults(func=cmd_stages)

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
        help="print one run's test metrics per iteration and model, its search, cost and stage times",
        epilog="examples:\n  dits show\n  dits show --params profiles/small.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("--metrics", default="metrics", help="metrics directory (default metrics)")
    show.add_argument("--data", default="data", help="tables directory (default data)")
    show.add_argument("--params", default="params.yaml", help="the run to show: its iterations and tasks")
    show.add_argument("--all", action="store_true", help="every result in the workspace, of any run")
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
    experiment.add_argument(
        "name", choices=("direction", "label_noise", "q_relation", "selection", "replicate")
    )
    experiment.add_argument("--pairs", type=int, default=100, help="pairs per task (default 100)")
    experiment.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3; replicate 5)")
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
    experiment.add_argument(
        "--source",
        choices=("pool", "pipeline"),
        default="pool",
        help="label_noise, direction: first-turn pairs of the samples (default) or the search's pairs",
    )
    experiment.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    experiment.add_argument(
        "--tag", help="write to data/experiments/NAME-TAG/ (keeps runs of other settings)"
    )
    experiment.add_argument("--data", default="data", help="tables directory (default data)")
    experiment.add_argument(
        "--optima-rollouts",
        type=int,
        nargs="+",
        metavar="R",
        help="replicate: add Optima's search at R rollouts per node, one arm per R (default: none)",
    )
    experiment.add_argument(
        "--conditions",
        nargs="*",
        choices=("influence-g0", "influence-g1", "q", "random", "all"),
        help="replicate: the rankings run (default all five; none named: only the Optima arms)",
    )
    experiment.add_argument("--jobs", type=int, default=1, help="replicate: chains run at once (default 1)")
    experiment.add_argument(
        "--summary-only", action="store_true", help="replicate: only re-read the finished runs"
    )
    experiment.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        metavar="S",
        help="replicate: run these of the seeds 0..N-1 only (the others ran elsewhere: --include)",
    )
    experiment.add_argument(
        "--include",
        nargs="+",
        metavar="RESULTS",
        help="replicate: results.parquet of earlier runs of the study; their seeds join the summary",
    )
    experiment.set_defaults(func=cmd_experiment)

    export = sub.add_parser(
        "export",
        help="write an iteration's SFT data and selected pairs in the formats TRL's trainers load",
        epilog=EPILOG_EXPORT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("iter", metavar="ITER", type=int, help="iteration k")
    export.add_argument("--task", help="one task of task.names (default: all)")
    export.add_argument(
        "--format", choices=("parquet", "jsonl", "datasets"), default="parquet", help="default parquet"
    )
    export.add_argument("-o", "--output", help="output directory (default export/iter=ITER)")
    export.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    export.add_argument("--data", default="data", help="tables directory (default data)")
    export.set_defaults(func=cmd_export)

    plan = sub.add_parser(
        "plan",
        help="memory and compute of every stage for the params, from the model's config alone",
        epilog="examples:\n  dits plan\n"
        "  dits plan --params profiles/hotpotqa-llama3-8b.yaml --model /ckpt/llama3-8b\n"
        "  dits plan --format json | jq '.stages[] | {stage, memory_gib}'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    plan.add_argument(
        "--model", help="a directory with the model's config.json (default: model.base; weights not needed)"
    )
    plan.add_argument(
        "--gpu-gib", type=float, default=80.0, help="memory of the GPU a process gets (default 80)"
    )
    plan.add_argument("--format", choices=("text", "json"), default="text", help="json: for scripts")
    plan.set_defaults(func=cmd_plan)

    data = sub.add_parser("data", help="check a dataset directory before running on it")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_check = data_sub.add_parser(
        "check",
        help="print the splits and record counts of a dataset directory and records as the agents see them",
        epilog="examples:\n  dits data check hotpotqa /data/hotpotqa\n"
        "  dits data check gsm8k /data/gsm8k --format json > gsm8k.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_check.add_argument("task", metavar="TASK", help="a dataset task: hotpotqa, 2wikimultihopqa, … math")
    data_check.add_argument("path", metavar="PATH", help="the dataset directory")
    data_check.add_argument(
        "--params",
        default="params.yaml",
        help="whose seed, context rule, pool sizes and slices to use (default params.yaml)",
    )
    data_check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one object per record (default text)",
    )
    data_check.add_argument(
        "--records", type=int, default=2, help="records shown per split in text (default 2)"
    )
    data_check.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DitsError as exc:
        print(f"dits: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader stopped early (`dits ... | head`): what it read is all it wanted. Python would
        # flush stdout again at exit and fail on the closed pipe; point it at /dev/null instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
