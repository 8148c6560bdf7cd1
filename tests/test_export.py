"""dits export: the rows the sft and dpo stages train on, in files TRL's trainers and datasets load."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import torch
from tiny import tiny_llama

from dits.cli import main
from dits.config import Params
from dits.dialogue import system_prompt
from dits.errors import DitsError
from dits.export import dpo_table, export, sft_table
from dits.storage.schemas import SCHEMAS
from dits.storage.store import part_path, read_table, write_part
from dits.tasks.base import Example
from dits.train import recipes

TASK = "synthetic-exchange"
PARAMS = dataclasses.replace(Params(), task=dataclasses.replace(Params().task, names=[TASK]))
BASE = Path(__file__).resolve().parents[1] / "models" / "base"

TASKS = pl.DataFrame(
    {
        "example_id": ["e1", "e2", "e3"],
        "task": [TASK] * 3,
        "family": ["exchange"] * 3,
        "pool": ["sft", "sft", "search"],
        "question": ["where was ada born ?", "where was leo born ?", "where was mia born ?"],
        "context_alice": ["founder 1 ada", "founder 2 leo", "founder 3 mia"],
        "context_bob": ["1 ada oslo", "2 leo lima", "3 mia rome"],
        "answers": [["oslo"], ["lima"], ["rome"]],
        "source_id": ["hp-101", "hp-102", "hp-103"],
    }
)


def message(agent: str, text: str) -> dict:
    return {"agent": agent, "text": text, "tokens": 3}


def dialogue(did: str, eid: str, reward: float, messages: list[dict]) -> dict:
    return {
        "dialogue_id": did,
        "task": TASK,
        "example_id": eid,
        "policy": "base",
        "seed": 7,
        "messages": messages,
        "answer": "oslo",
        "score": 1.0,
        "tokens": 3 * len(messages),
        "reward": reward,
        "stop_reason": "agree",
    }


# Best per question: e1 → d1 (0.9), e2 → d3 (0.6), e3 → d4 (0.3); sft.keep_fraction 0.7 keeps the
# top int(0.7 · 3) = 2 questions, both above sft.min_reward 0.5. d3 has only Alice's message.
DIALOGUES = pl.DataFrame(
    [
        dialogue(
            "d1", "e1", 0.9, [message("Alice", "Alice: founder ada"), message("Bob", "Bob: <A> oslo </A>")]
        ),
        dialogue("d2", "e1", 0.4, [message("Alice", "Alice: ?")]),
        dialogue("d3", "e2", 0.6, [message("Alice", "Alice: <A> lima </A>")]),
        dialogue("d4", "e3", 0.3, [message("Alice", "Alice: no")]),
    ]
)


def pair(pid: str, tree: str, chosen: str, rejected: str, q: tuple[float, float]) -> dict:
    return {
        "pair_id": pid,
        "task": TASK,
        "tree_id": tree,
        "parent_id": "root",
        "chosen_id": f"{pid}c",
        "rejected_id": f"{pid}r",
        "agent": "Alice",
        "prompt": [{"role": "system", "content": f"you are alice ({tree})"}],
        "chosen": chosen,
        "rejected": rejected,
        "q_chosen": q[0],
        "q_rejected": q[1],
    }


PAIRS = pl.DataFrame(
    [
        pair("p2", "e3", "Alice: founder mia", "Alice: hm", (0.8, 0.1)),
        pair("p1", "e3", "Alice: mia", "Alice: ?", (0.7, 0.3)),
        pair("p3", "e3", "Alice: 3 mia", "Alice: what", (0.6, 0.2)),
    ]
)
SELECTED = pl.DataFrame(
    {
        "pair_id": ["p2", "p1"],
        "task": [TASK] * 2,
        "rank": [1, 2],
        "h": [1.2, 0.9],
        "by": ["influence"] * 2,
        "alpha": [0.5] * 2,
        "gamma": [1.0] * 2,
    }
)


def system(agent: str, i: int) -> dict:
    row = TASKS.row(i, named=True)
    example = Example(row["example_id"], row["question"], (row["context_alice"], row["context_bob"]), ("x",))
    return {"role": "system", "content": system_prompt("exchange", agent, example)}


SFT_ROWS = [
    {
        "task": TASK,
        "source_id": "hp-101",
        "example_id": "e1",
        "dialogue_id": "d1",
        "agent": "Alice",
        "reward": 0.9,
        "messages": [
            system("Alice", 0),
            {"role": "assistant", "content": "Alice: founder ada"},
            {"role": "user", "content": "Bob: <A> oslo </A>"},
        ],
    },
    {
        "task": TASK,
        "source_id": "hp-101",
        "example_id": "e1",
        "dialogue_id": "d1",
        "agent": "Bob",
        "reward": 0.9,
        "messages": [
            system("Bob", 0),
            {"role": "user", "content": "Alice: founder ada"},
            {"role": "assistant", "content": "Bob: <A> oslo </A>"},
        ],
    },
    {
        "task": TASK,
        "source_id": "hp-102",
        "example_id": "e2",
        "dialogue_id": "d3",
        "agent": "Alice",
        "reward": 0.6,
        "messages": [system("Alice", 1), {"role": "assistant", "content": "Alice: <A> lima </A>"}],
    },
]


def dpo_row(pid: str, chosen: str, rejected: str, q: tuple[float, float]) -> dict:
    return {
        "task": TASK,
        "source_id": "hp-103",
        "example_id": "e3",
        "pair_id": pid,
        "q_chosen": q[0],
        "q_rejected": q[1],
        "prompt": [{"role": "system", "content": "you are alice (e3)"}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


# The selected pairs p1 and p2 (not p3), in pair_id order as the dpo stage trains on them.
DPO_ROWS = [
    dpo_row("p1", "Alice: mia", "Alice: ?", (0.7, 0.3)),
    dpo_row("p2", "Alice: founder mia", "Alice: hm", (0.8, 0.1)),
]


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    """Iteration 0's tasks, dialogues, pairs and selected tables, with a tasks table that keeps source_id."""
    monkeypatch.chdir(tmp_path)
    if "source_id" not in SCHEMAS["tasks"].names:
        monkeypatch.setitem(SCHEMAS, "tasks", SCHEMAS["tasks"].append(pa.field("source_id", pa.string())))
    root = tmp_path / "data"
    for table, frame in (
        ("tasks", TASKS),
        ("dialogues", DIALOGUES),
        ("pairs", PAIRS),
        ("selected", SELECTED),
    ):
        write_part(part_path(root, table, 0), table, frame)
    return root


def load(out: Path, kind: str, fmt: str, cache: Path):
    """Load one exported set the way a TRL user would, per format."""
    from datasets import load_dataset, load_from_disk

    if fmt == "datasets":
        return load_from_disk(str(out / kind))
    builder = "json" if fmt == "jsonl" else fmt
    return load_dataset(builder, data_files=str(out / f"{kind}.{fmt}"), split="train", cache_dir=str(cache))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "datasets"])
def test_export_loads_back_with_datasets_as_the_exact_rows(data, tmp_path, fmt):
    out = tmp_path / "out"
    written = export(PARAMS, 0, data, out, fmt)
    names = ["sft", "dpo"] if fmt == "datasets" else [f"sft.{fmt}", f"dpo.{fmt}"]
    assert written == {out / names[0]: 3, out / names[1]: 2}
    assert load(out, "sft", fmt, tmp_path / "cache").to_list() == SFT_ROWS
    assert load(out, "dpo", fmt, tmp_path / "cache").to_list() == DPO_ROWS


def test_dpo_export_from_a_tasks_table_without_source_id_leaves_the_column_out():
    dpo = dpo_table([TASK], PAIRS, SELECTED, TASKS.drop("source_id"))
    assert dpo.column_names == [name for name in DPO_ROWS[0] if name != "source_id"]
    assert dpo.to_pylist() == [{k: v for k, v in row.items() if k != "source_id"} for row in DPO_ROWS]


def test_export_rows_are_what_the_sft_and_dpo_stages_train_on(data, monkeypatch):
    trained: dict[str, list] = {}
    monkeypatch.setattr(
        recipes, "train", lambda launch, fit: trained.update({fit.trainer[-3:]: fit.rows}) or {"loss": []}
    )
    tasks, dialogues = read_table(data, "tasks", 0), read_table(data, "dialogues", 0)
    pairs = read_table(data, "pairs", 0).join(read_table(data, "selected", 0).select("pair_id"), on="pair_id")
    recipes.sft_task(PARAMS, 0, TASK, dialogues, tasks, Path("unused"))
    recipes.dpo_task(PARAMS, 0, TASK, pairs, Path("unused"))
    sft = sft_table(PARAMS, 0, [TASK], dialogues, tasks).to_pylist()
    dpo = dpo_table([TASK], read_table(data, "pairs", 0), read_table(data, "selected", 0), tasks).to_pylist()
    assert [row["messages"] for row in sft] == trained["sft"]
    assert [{k: row[k] for k in ("prompt", "chosen", "rejected")} for row in dpo] == trained["dpo"]


def test_exported_sets_train_one_step_in_trl_sft_and_dpo_trainers(data, tmp_path):
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    export(PARAMS, 0, data, tmp_path / "out", "parquet")
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    common = dict(
        max_steps=1,
        per_device_train_batch_size=2,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    sets = {
        kind: load_dataset(
            "parquet",
            data_files=str(tmp_path / "out" / f"{kind}.parquet"),
            split="train",
            cache_dir=str(tmp_path),
        )
        for kind in ("sft", "dpo")
    }
    model = tiny_llama(tokenizer)
    sft = SFTTrainer(
        model=model,
        args=SFTConfig(output_dir=str(tmp_path / "sft"), assistant_only_loss=True, max_length=128, **common),
        train_dataset=sets["sft"],
        processing_class=tokenizer,
    )
    assert sft.train().global_step == 1
    dpo = DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model).eval(),
        args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_length=128, **common),
        train_dataset=sets["dpo"],
        processing_class=tokenizer,
    )
    assert dpo.train().global_step == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_export_of_an_iteration_without_selected_pairs_names_the_select_stage(data, tmp_path):
    with pytest.raises(DitsError) as exc:
        export(PARAMS, 1, data, tmp_path / "out", "parquet")
    assert str(exc.value) == (
        f"{data}/tasks/iter=1: no parts found; run the prepare stage first (dvc repro prepare)"
    )
    write_part(part_path(data, "tasks", 1), "tasks", TASKS)
    write_part(part_path(data, "dialogues", 1), "dialogues", DIALOGUES)
    write_part(part_path(data, "pairs", 1), "pairs", PAIRS)
    with pytest.raises(DitsError) as exc:
        export(PARAMS, 1, data, tmp_path / "out", "parquet")
    assert str(exc.value) == (
        f"{data}/selected/iter=1: no parts found; run the select stage first (dvc repro select@1)"
    )
    assert not (tmp_path / "out").exists()


def test_export_of_a_task_not_in_task_names_stops(data, tmp_path):
    with pytest.raises(DitsError) as exc:
        export(PARAMS, 0, data, tmp_path / "out", "parquet", task="hotpotqa")
    assert str(exc.value) == "--task 'hotpotqa': not in task.names (synthetic-exchange)"


@pytest.mark.parametrize("fmt", ["parquet", "datasets"])
def test_export_with_no_selected_pair_writes_no_dpo_set_and_removes_an_older_one(data, tmp_path, fmt):
    out = tmp_path / "out"
    export(PARAMS, 0, data, out, fmt)
    write_part(
        part_path(data, "selected", 0), "selected", pa.Table.from_pylist([], schema=SCHEMAS["selected"])
    )
    dpo = out / ("dpo" if fmt == "datasets" else "dpo.parquet")
    assert dpo.exists()
    assert export(PARAMS, 0, data, out, fmt) == {
        out / ("sft" if fmt == "datasets" else "sft.parquet"): 3,
        dpo: 0,
    }
    assert not dpo.exists()


def test_export_into_a_path_that_is_a_file_stops(data, tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(DitsError) as exc:
        export(PARAMS, 0, data, tmp_path / "out", "parquet")
    assert (
        str(exc.value)
        == f"{tmp_path / 'out'}: exists and is a file; -o names the directory the export goes to"
    )
    (tmp_path / "out").unlink()
    (tmp_path / "out" / "sft").mkdir(parents=True)
    (tmp_path / "out" / "sft" / "x").write_text("x")
    (tmp_path / "out" / "dpo").write_text("x")
    with pytest.raises(DitsError) as exc:
        export(PARAMS, 0, data, tmp_path / "out", "datasets")
    assert str(exc.value) == (
        f"{tmp_path / 'out' / 'dpo'}: exists and is not a directory (--format datasets); "
        "remove it or choose another -o"
    )
    assert [p.name for p in (tmp_path / "out" / "sft").iterdir()] == ["x"]


def test_export_with_no_kept_dialogue_stops_as_the_sft_stage_does(data, tmp_path):
    strict = dataclasses.replace(PARAMS, sft=dataclasses.replace(PARAMS.sft, min_reward=0.95))
    with pytest.raises(DitsError) as exc:
        export(strict, 0, data, tmp_path / "out", "parquet")
    assert str(exc.value) == (
        "dialogues iter=0: no synthetic-exchange dialogue reaches sft.min_reward = 0.95; "
        "the sft stage trains on none either"
    )


def test_cli_export_writes_jsonl_of_one_task_and_reports_errors_in_one_line(data, tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(f"task:\n  names: [{TASK}]\n")
    assert main(["export", "0", "--task", TASK, "--format", "jsonl", "--data", str(data)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "wrote export/iter=0/sft.jsonl (3 rows)",
        "wrote export/iter=0/dpo.jsonl (2 rows)",
    ]
    lines = (tmp_path / "export" / "iter=0" / "dpo.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == DPO_ROWS
    assert main(["export", "3", "--data", str(data)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"dits: error: {data}/tasks/iter=3: no parts found; run the prepare stage first (dvc repro prepare)"
    ]
