"""``dits data check``: what a dataset directory gives the agents, and one line for bad data."""

from __future__ import annotations

import json

from test_datasets_gsm8k import _published as gsm8k_files
from test_datasets_hotpotqa import _published as hotpotqa_files

from dits.cli import main
from dits.tasks.loaders.dispatch import load


def test_data_check_prints_splits_counts_and_each_agents_prompt_with_the_gold(tmp_path, capsys):
    root = hotpotqa_files(tmp_path)
    assert main(["data", "check", "hotpotqa", str(root), "--records", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"hotpotqa at {root}: validation 2 records"
    assert out[2:4] == ["== validation 5a8b57f2", "gold: Arthur's Magazine"]
    alice = out[out.index("-- Alice's system prompt:") + 1]
    assert alice == "You are Alice, an agent answering a question together with Bob."
    assert (
        "Arthur's Magazine (1844-1846) was a literary periodical."
        in out[out.index("-- Bob's system prompt:") :]
    )


def test_data_check_json_gives_one_object_per_record(tmp_path, capsys):
    assert main(["data", "check", "gsm8k", str(gsm8k_files(tmp_path)), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = load("gsm8k", tmp_path)
    assert [(r["split"], r["source_id"], r["answers"]) for r in rows] == [
        ("train", records[0].source_id, ["72"]),
        ("train", records[1].source_id, ["1234"]),
    ]
    assert set(rows[0]) == {"split", "source_id", "question", "answers", "alice", "bob"}
    assert "$\\boxed{answer}$, where the answer is merely a number" in rows[0]["alice"]
    assert "Never give the answer yourself" in rows[0]["bob"]


def test_data_check_of_malformed_data_prints_one_line_and_exits_1(tmp_path, capsys):
    problems = [{"question": "How many?", "answer": "seven"}]
    root = gsm8k_files(tmp_path, problems)
    before = sorted(tmp_path.rglob("*"))
    assert main(["data", "check", "gsm8k", str(root)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"dits: error: {root / 'train.jsonl'}: line 1")
    assert sorted(tmp_path.rglob("*")) == before


def test_data_check_of_a_task_that_is_not_a_dataset_names_the_dataset_tasks(tmp_path, capsys):
    assert main(["data", "check", "synthetic-debate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "dits: error: unknown dataset task 'synthetic-debate': expected one of "
        "2wikimultihopqa, arc, cbt, gsm8k, hotpotqa, math, mmlu, triviaqa\n"
    )


def test_data_check_into_a_pipe_closed_early_ends_without_a_traceback(tmp_path):
    import subprocess
    import sys

    problems = [{"question": f"Ann has {i} apples. How many?", "answer": f"#### {i}"} for i in range(400)]
    root = gsm8k_files(tmp_path, problems)  # ~400 kB of JSON lines: more than a pipe buffer holds
    command = [sys.executable, "-m", "dits.cli", "data", "check", "gsm8k", str(root), "--format", "json"]
    dits = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = dits.stdout.readline()
    dits.stdout.close()  # what `| head -1` does
    assert json.loads(first)["split"] == "train"
    assert dits.wait(timeout=120) == 0
    assert b"Traceback" not in dits.stderr.read()


def test_data_check_prints_what_each_pool_takes_and_where_under_the_params(tmp_path, capsys):
    problems = [{"question": f"Ann has {i} pens. How many?", "answer": f"#### {i}"} for i in range(30)]
    root = gsm8k_files(tmp_path, problems)
    params = tmp_path / "params.yaml"
    params.write_text(
        "iterations: [{k: 0, policy: models/base}]\n"
        "task: {names: [gsm8k], paths: {gsm8k: x}, sft_examples: 8, search_examples: 2, val_examples: 4, "
        "test_examples: 3, slices: {gsm8k: {val_start: 0}}}\n"
    )
    assert main(["data", "check", "gsm8k", str(root), "--records", "0", "--params", str(params)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-6:] == [
        f"pools under {params} (1 iteration):",
        "  sft         8 records of train: 5-12",
        "  search      2 records of train: 13-14",
        "  val         4 records of train: 1-4",
        "  test        3 records of test: 1-3  <- test has 0 records",
        f"prepare would stop: {root}: gsm8k has no split 'test'; found train",
    ]
