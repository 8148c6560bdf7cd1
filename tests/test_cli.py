from __future__ import annotations

import json
import os
import sys
import types

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.cli import main
from dits.storage.store import part_path, write_part


def sql(tmp_path, query: str, *extra: str) -> int:
    return main(["sql", query, "--data", str(tmp_path / "data"), *extra])


def assert_one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dits: error:")
    return lines[0]


def test_sql_prints_a_table(tmp_path, capsys):
    assert sql(tmp_path, "SELECT 1 AS x, 'rome' AS city") == 0
    out = capsys.readouterr().out
    assert "x" in out and "city" in out
    assert "1" in out and "rome" in out


def test_sql_writes_csv(tmp_path, capsys):
    assert sql(tmp_path, "SELECT 1 AS x, 'a' AS y UNION ALL SELECT 2, 'b' ORDER BY x", "--format", "csv") == 0
    assert capsys.readouterr().out == "x,y\n1,a\n2,b\n"


def test_sql_writes_json(tmp_path, capsys):
    assert sql(tmp_path, "SELECT 1 AS x, 'a' AS y", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"x": 1, "y": "a"}]


def test_sql_writes_parquet_with_output_option(tmp_path, capsys):
    out = tmp_path / "out.parquet"
    assert sql(tmp_path, "SELECT 1 AS x UNION ALL SELECT 2", "-o", str(out)) == 0
    assert sorted(pq.read_table(out).column("x").to_pylist()) == [1, 2]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(out) in captured.err


def test_sql_queries_table_views_with_iter_column(tmp_path, capsys):
    frame = pl.DataFrame(
        {
            "model": ["base", "sft", "sft"],
            "example_id": ["e0", "e0", "e1"],
            "task": ["synthetic-debate"] * 3,
            "answer": ["3", "4", "5"],
            "score": [0.0, 1.0, 1.0],
            "tokens": [10, 12, 14],
            "messages": [[{"agent": "Alice", "text": "Alice: <A>3</A>", "tokens": 10}]] * 3,
        }
    )
    write_part(part_path(tmp_path / "data", "eval", 2), "eval", frame)
    query = "SELECT iter, model, avg(score) AS s FROM eval GROUP BY ALL ORDER BY model"
    assert sql(tmp_path, query, "--format", "csv") == 0
    assert capsys.readouterr().out == "iter,model,s\n2,base,0.0\n2,sft,1.0\n"


def test_sql_syntax_error_prints_one_line_and_returns_1(tmp_path, capsys):
    assert sql(tmp_path, "SELEC 1") == 1
    captured = capsys.readouterr()
    assert "SELEC" in assert_one_error_line(captured.err)
    assert captured.out == ""


def test_sql_on_missing_table_prints_one_line_and_returns_1(tmp_path, capsys):
    assert sql(tmp_path, "SELECT * FROM dialogues") == 1
    assert "dialogues" in assert_one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("empty", [False, True])
def test_sql_before_any_table_says_to_run_dvc_repro(tmp_path, capsys, empty):
    if empty:
        (tmp_path / "data" / "pairs").mkdir(parents=True)
    assert sql(tmp_path, "SELECT * FROM pairs") == 1
    assert assert_one_error_line(capsys.readouterr().err) == (
        f"dits: error: {tmp_path / 'data'}: no tables yet; run `dvc repro` (or `dvc pull` from a DVC "
        "remote); the query failed: Catalog Error: Table with name pairs does not exist!"
    )


def test_sql_on_a_table_not_written_yet_lists_the_tables_there(tmp_path, capsys):
    write_part(part_path(tmp_path / "data", "selected", 0), "selected", selected_frame())
    assert sql(tmp_path, "SELECT * FROM pairs") == 1
    assert assert_one_error_line(capsys.readouterr().err) == (
        "dits: error: sql: Catalog Error: Table with name pairs does not exist! (tables: selected)"
    )


def test_sql_error_while_running_the_query_prints_one_line_and_returns_1(tmp_path, capsys):
    # DuckDB relations are lazy: a conversion error surfaces only when the rows are fetched.
    assert sql(tmp_path, "SELECT CAST('x' AS INTEGER) AS y") == 1
    assert "Conversion Error" in assert_one_error_line(capsys.readouterr().err)


def test_sql_output_into_a_missing_directory_creates_it_and_writes_the_file_whole(tmp_path):
    out = tmp_path / "no" / "dir" / "out.parquet"
    assert sql(tmp_path, "SELECT 1 AS x", "-o", str(out)) == 0
    assert pl.read_parquet(out)["x"].to_list() == [1]
    assert os.listdir(out.parent) == ["out.parquet"]


def test_run_unknown_stage_returns_1_naming_the_stage_and_listing_the_known_ones(capsys):
    assert main(["run", "smaple"]) == 1
    line = assert_one_error_line(capsys.readouterr().err)
    assert "smaple: no such stage; known stages: prepare, bootstrap, bootstrap_score, sample," in line


def echo_stage(tmp_path, monkeypatch, sharded: bool = False) -> None:
    """A stage ``echo`` (a module ``dits.stages.echo``) that prints its arguments; cwd is ``tmp_path``."""
    from dits import stages
    from dits.stages.stage import Stage

    module = types.ModuleType("dits.stages.echo")
    module.STAGE = Stage("echo", params=("seed",), sharded=sharded, torch=False)
    module.work = lambda run: print(run.params.seed, run.k, run.shard)
    monkeypatch.setitem(sys.modules, "dits.stages.echo", module)
    monkeypatch.setattr(stages, "NAMES", (*stages.NAMES, "echo"))
    (tmp_path / "params.yaml").write_text("seed: 5\n")
    monkeypatch.chdir(tmp_path)


def test_run_calls_the_stage_work_with_params_iter_and_shard(tmp_path, monkeypatch, capsys):
    echo_stage(tmp_path, monkeypatch, sharded=True)
    assert main(["run", "echo", "--iter", "2", "--shard", "1/3"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "5 2 (1, 3)"


def test_run_gives_a_stage_that_does_not_shard_the_whole(tmp_path, monkeypatch, capsys):
    echo_stage(tmp_path, monkeypatch)
    assert main(["run", "echo", "--iter", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "5 1 (0, 1)"


def test_run_rejects_shard_on_a_stage_that_does_not_shard(tmp_path, monkeypatch, capsys):
    echo_stage(tmp_path, monkeypatch)
    assert main(["run", "echo", "--shard", "1/2"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert assert_one_error_line(captured.err) == (
        "dits: error: --shard 1/2: stage echo does not shard; run it without --shard"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "task:\n  names: []\n",
            "params.yaml: task.names = []: must name at least one of 2wikimultihopqa, arc, cbt, gsm8k, "
            "hotpotqa, math, mmlu, synthetic-debate, synthetic-exchange, triviaqa",
        ),
        (
            "seed: 5\nsearch:\n  rollouts: 3\n  top_k: 10\n  rollouts: 5\n",
            "params.yaml: line 5: search.rollouts: duplicate key (first at line 3); a key may appear once",
        ),
    ],
)
def test_run_with_a_params_fault_prints_one_line_naming_file_and_key(
    tmp_path, monkeypatch, capsys, text, expected
):
    echo_stage(tmp_path, monkeypatch)
    (tmp_path / "params.yaml").write_text(text)
    assert main(["run", "echo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert assert_one_error_line(captured.err) == f"dits: error: {expected}"


def test_run_with_bad_params_returns_1(tmp_path, monkeypatch, capsys):
    echo_stage(tmp_path, monkeypatch)
    (tmp_path / "params.yaml").write_text("sede: 5\n")
    assert main(["run", "echo"]) == 1
    assert "sede: unknown key" in assert_one_error_line(capsys.readouterr().err)


def test_stages_check_fails_on_a_stale_dvc_yaml_and_write_mends_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert main(["stages", "--check"]) == 1
    assert "dvc.yaml: not what the stage declarations generate" in assert_one_error_line(
        capsys.readouterr().err
    )
    assert main(["stages", "--write"]) == 0
    assert main(["stages", "--check"]) == 0


@pytest.mark.parametrize("shard", ["3/2", "a/b", "1"])
def test_run_rejects_a_bad_shard(shard, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "sample", "--shard", shard])
    assert info.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_show_without_metrics_returns_1(tmp_path, capsys):
    assert main(["show", "--all", "--metrics", str(tmp_path / "metrics")]) == 1
    assert "no metrics yet" in assert_one_error_line(capsys.readouterr().err)


EVAL_METRICS = {
    "eval": {
        "synthetic-debate": {
            "base": {"score": 0.495, "score_se": 0.0354, "n": 200, "tokens": 35.42, "chance": 0.0592},
            "dpo": {
                "score": 0.64,
                "score_se": 0.034,
                "n": 200,
                "tokens": 34.31,
                "chance": 0.0592,
                "gain_over_base": 0.145,
                "gain_over_base_se": 0.0472,
            },
        }
    }
}


def selected_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": ["p0"],
            "task": ["t"],
            "rank": [0],
            "h": [1.0],
            "by": ["q"],
            "alpha": [0.5],
            "gamma": [1.0],
        }
    )


def show(tmp_path, metrics: dict[str, str], tables: bool = True) -> int:
    """Run ``dits show`` over metrics files ``{name: text}`` and, if ``tables``, one small table."""
    (tmp_path / "metrics").mkdir(exist_ok=True)
    for name, text in metrics.items():
        (tmp_path / "metrics" / name).write_text(text)
    if tables:
        write_part(part_path(tmp_path / "data", "selected", 0), "selected", selected_frame())
    return main(["show", "--all", "--metrics", str(tmp_path / "metrics"), "--data", str(tmp_path / "data")])


def test_show_prints_score_and_paired_gain_of_each_model(tmp_path, capsys):
    assert show(tmp_path, {"iter=0.json": json.dumps(EVAL_METRICS)}) == 0
    out = capsys.readouterr().out
    assert "│ 0    │ synthetic-debate │ base  │ 0.495 ± 0.035 │ 200 │ 35.4" in out
    assert "0.640 ± 0.034 │ 200 │ 34.3            │ 0.059  │ +0.145 ± 0.047" in out


def bad_shape(path: tuple[str, ...], value: object = None) -> str:
    """EVAL_METRICS as JSON with the entry at ``path`` replaced by ``value`` (None: removed)."""
    metrics = json.loads(json.dumps(EVAL_METRICS))
    entry = metrics
    for key in path[:-1]:
        entry = entry[key]
    if value is None:
        del entry[path[-1]]
    else:
        entry[path[-1]] = value
    return json.dumps(metrics)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "iter=0.json",
            '{"test": {}}',
            "iter=0.json: eval: missing; expected {task: {model: {score, score_se, n, tokens, chance}}}",
        ),
        (
            "iter=0.json",
            bad_shape(("eval", "synthetic-debate", "base", "score_se")),
            "iter=0.json: eval.synthetic-debate.base.score_se: missing; expected a number",
        ),
        (
            "iter=0.json",
            bad_shape(("eval", "synthetic-debate", "dpo", "gain_over_base_se")),
            "iter=0.json: eval.synthetic-debate.dpo.gain_over_base_se: missing; expected a number",
        ),
        (
            "iter=0.json",
            bad_shape(("eval", "synthetic-debate", "base", "n"), "200"),
            'iter=0.json: eval.synthetic-debate.base.n = "200": expected a number',
        ),
        (
            "iter=0.json",
            bad_shape(("eval", "synthetic-debate"), [0.5]),
            "iter=0.json: eval.synthetic-debate = [0.5]: expected an object",
        ),
        ("iter=0.json", "score: 0.5\n", "iter=0.json: not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("iter=last.json", "{}", "iter=last.json: expected a name iter=<k>.json with an integer k"),
    ],
)
def test_show_over_a_metrics_file_of_another_shape_names_file_and_field(
    tmp_path, capsys, name, text, expected
):
    assert show(tmp_path, {name: text}) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert assert_one_error_line(captured.err) == f"dits: error: {tmp_path / 'metrics'}/{expected}"


def test_show_over_a_stage_time_without_seconds_names_the_file(tmp_path, capsys):
    (tmp_path / "metrics" / "stages").mkdir(parents=True)
    (tmp_path / "metrics" / "stages" / "sample@0.json").write_text('{"stage": "sample@0"}')
    assert show(tmp_path, {"iter=0.json": json.dumps(EVAL_METRICS)}) == 1
    path = tmp_path / "metrics" / "stages" / "sample@0.json"
    assert assert_one_error_line(capsys.readouterr().err) == (
        f"dits: error: {path}: seconds: missing; expected a number"
    )


def test_show_before_any_table_prints_the_metrics_then_says_to_run_dvc_repro(tmp_path, capsys):
    assert show(tmp_path, {"iter=0.json": json.dumps(EVAL_METRICS)}, tables=False) == 1
    captured = capsys.readouterr()
    assert "test metrics" in captured.out
    assert assert_one_error_line(captured.err) == (
        f"dits: error: {tmp_path / 'data'}: no tables yet; run `dvc repro` (or `dvc pull` from a DVC remote)"
    )


def test_show_over_a_table_of_another_shape_prints_one_line(tmp_path, capsys):
    for table in ("nodes", "pairs"):
        folder = tmp_path / "data" / table / "iter=0"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"tree_id": ["t0"]}), folder / "part-0.parquet")
    assert show(tmp_path, {"iter=0.json": json.dumps(EVAL_METRICS)}, tables=False) == 1
    line = assert_one_error_line(capsys.readouterr().err)
    assert line.startswith(f"dits: error: {tmp_path / 'data'}: a table of another shape: Binder Error:")


def test_show_names_the_backend_that_wrote_each_table(tmp_path, capsys, monkeypatch):
    from dits.storage import store

    monkeypatch.setattr(store, "WRITER", {})
    write_part(part_path(tmp_path / "data", "selected", 1), "selected", selected_frame())  # unstamped
    store.stamp(backend="vllm")
    assert show(tmp_path, {"iter=0.json": json.dumps(EVAL_METRICS)}) == 0
    out = capsys.readouterr().out
    assert "│ selected │ 0    │ vllm    │" in out
    assert "│ selected │ 1 " not in out  # a part written before stamping names no backend


def test_show_prints_toa_results_when_only_the_toa_stages_ran(tmp_path, capsys):
    toa = tmp_path / "metrics" / "toa"
    toa.mkdir(parents=True)
    entry = {"score": 0.5, "score_se": 0.05, "n": 100, "diff_vs_toa-dpo": -0.1, "diff_vs_toa-dpo_se": 0.04}
    eval_json = {
        "synthetic-debate": {"random-dpo": entry, "toa-dpo": {"score": 0.6, "score_se": 0.05, "n": 100}}
    }
    (toa / "eval.json").write_text(json.dumps(eval_json))
    (toa / "curves.csv").write_text(
        "method,task,n,questions,generations,tokens,best_reward,best_score,best_score_se,oracle_score,models\n"
        "toa,synthetic-debate,2,64,6.0,480.5,1.2,0.7,0.05,0.8,3\n"
    )
    assert (
        main(["show", "--all", "--metrics", str(tmp_path / "metrics"), "--data", str(tmp_path / "data")]) == 0
    )
    out = capsys.readouterr().out
    assert "│ synthetic-debate │ random-dpo │ 0.500 ± 0.050 │ 100 │ -0.100 ± 0.040" in out
    assert "│ synthetic-debate │ toa    │ 2 │ 6           │ 480.5" in out


def test_show_shows_the_run_of_its_params_and_names_what_it_leaves_out(tmp_path, capsys):
    """After a one-iteration run, the committed default's iterations 1 and 2 are not mixed in."""
    other = json.loads(json.dumps(EVAL_METRICS))
    other["eval"]["synthetic-exchange"] = other["eval"]["synthetic-debate"]
    (tmp_path / "metrics" / "stages").mkdir(parents=True)
    for name in ("sample@0", "sample@1", "prepare"):
        (tmp_path / "metrics" / "stages" / f"{name}.json").write_text('{"seconds": 1.5}')
    params = tmp_path / "params.yaml"
    params.write_text("iterations: [{k: 0, policy: models/base}]\ntask: {names: [synthetic-debate]}\n")
    metrics = {"iter=0.json": json.dumps(other), "iter=1.json": json.dumps(EVAL_METRICS)}
    write_part(part_path(tmp_path / "data", "selected", 1), "selected", selected_frame())
    assert show(tmp_path, metrics, tables=True) == 0  # --all: everything in the workspace
    out = capsys.readouterr().out
    assert "│ 1    │ synthetic-debate" in out and "synthetic-exchange" in out
    args = ["show", "--metrics", str(tmp_path / "metrics"), "--data", str(tmp_path / "data")]
    assert main([*args, "--params", str(params)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run of {params}: tasks synthetic-debate; iterations 0\n")
    assert "│ 0    │ synthetic-debate │ base" in out
    assert "│ 1    │" not in out and "│ selected │ 1" not in out and "sample@1" not in out
    assert "│ sample@0 │ 1.5" in out and "│ prepare  │ 1.5" in out
    hidden = (
        f"not shown, not of this run's params (an earlier run's outputs): {tmp_path / 'metrics'}/iter=1.json"
    )
    assert f"{hidden}, task synthetic-exchange\n" in out
