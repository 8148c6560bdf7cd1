from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq
import pytest

from dits.cli import main
from dits.store import part_path, write_part


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


def test_sql_error_while_running_the_query_prints_one_line_and_returns_1(tmp_path, capsys):
    # DuckDB relations are lazy: a conversion error surfaces only when the rows are fetched.
    assert sql(tmp_path, "SELECT CAST('x' AS INTEGER) AS y") == 1
    assert "Conversion Error" in assert_one_error_line(capsys.readouterr().err)


def test_sql_output_to_missing_directory_prints_one_line_and_returns_1(tmp_path, capsys):
    assert sql(tmp_path, "SELECT 1 AS x", "-o", str(tmp_path / "no" / "dir" / "out.parquet")) == 1
    assert_one_error_line(capsys.readouterr().err)


def test_run_unknown_stage_returns_1_naming_the_stage(tmp_path, monkeypatch, capsys):
    (tmp_path / "stages").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nosuchstage"]) == 1
    line = assert_one_error_line(capsys.readouterr().err)
    assert "stages/nosuchstage.py: no such stage" in line


def test_run_unknown_stage_lists_known_stages(tmp_path, monkeypatch, capsys):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "sample.py").write_text("")
    (tmp_path / "stages" / "prepare.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "smaple"]) == 1
    assert assert_one_error_line(capsys.readouterr().err).endswith("known stages: prepare, sample")


def test_run_calls_the_stage_main_with_params_iter_and_shard(tmp_path, monkeypatch, capsys):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "echo.py").write_text(
        "def main(params, k, shard):\n    print(params.seed, k, shard)\n"
    )
    (tmp_path / "params.yaml").write_text("seed: 5\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "echo", "--iter", "2", "--shard", "1/3"]) == 0
    assert capsys.readouterr().out == "5 2 (1, 3)\n"


def test_run_with_bad_params_returns_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "echo.py").write_text("def main(params, k, shard):\n    pass\n")
    (tmp_path / "params.yaml").write_text("sede: 5\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "echo"]) == 1
    assert "sede: unknown key" in assert_one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("shard", ["3/2", "a/b", "1"])
def test_run_rejects_a_bad_shard(shard, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "sample", "--shard", shard])
    assert info.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_show_without_metrics_returns_1(tmp_path, capsys):
    assert main(["show", "--metrics", str(tmp_path / "metrics")]) == 1
    assert "no metrics yet" in assert_one_error_line(capsys.readouterr().err)
