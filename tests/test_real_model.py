"""End to end: ``profiles/small.yaml`` through `dvc repro` on a CBT and an ARC directory with a random
Llama-3-like model.

Neither the embedded tasks nor the embedded model: the datasets are read from their published
layouts (ARC's JSONL) and Hub snapshots (CBT's Parquet), the base model is a local checkpoint with
Llama-3's special tokens, chat template (no generation markers), end tokens and no pad token, so
this path, the README's "your own data and model", runs on every commit with the shipped profile:
only the dataset and model paths are the test's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from safetensors.torch import load_file
from test_pipeline import REPO, _make_repo, _run
from tiny import tiny_chat_model

WORDS = "ball box cat day dog garden hat house king tree".split()


def _cbt(root: Path) -> Path:
    """CBT as its Hub snapshot: CN/<split>-00000-of-00001.parquet, 20 sentences, a query, 10 options."""
    (root / "CN").mkdir(parents=True)
    for split, n in (("train", 12), ("validation", 5), ("test", 10)):
        rows = [
            {
                "sentences": [
                    f"the {WORDS[(i + j) % 10]} saw the {WORDS[(i * j) % 10]} ." for j in range(20)
                ],
                "question": f"the XXXXX of {split} {i} ran home .",
                "answer": WORDS[i % 10],
                "options": WORDS,
            }
            for i in range(n)
        ]
        pq.write_table(pa.Table.from_pylist(rows), root / "CN" / f"{split}-00000-of-00001.parquet")
    return root


def _arc(root: Path) -> Path:
    """ARC-Challenge as published: ARC-Challenge/ARC-Challenge-<Split>.jsonl."""
    (root / "ARC-Challenge").mkdir(parents=True)
    for split, n in (("Train", 12), ("Dev", 5), ("Test", 10)):
        lines = []
        for i in range(n):
            choices = [{"text": f"{WORDS[(i + c) % 10]} {c}", "label": "ABCD"[c]} for c in range(4)]
            question = {"stem": f"Which {split.lower()} thing is number {i}?", "choices": choices}
            lines.append(json.dumps({"id": f"{split}_{i}", "question": question, "answerKey": "ABCD"[i % 4]}))
        (root / "ARC-Challenge" / f"ARC-Challenge-{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def repro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    model = root / "chat-model"
    tiny_chat_model(model, [" ".join(WORDS), "Which thing is number 3? <A>cat 2</A>", "Alice: Bob:"] * 30)
    params = yaml.safe_load((REPO / "profiles" / "small.yaml").read_text())
    params["task"].update(
        names=["cbt", "arc"], paths={"cbt": str(_cbt(root / "cbt")), "arc": str(_arc(root / "arc"))}
    )
    params["model"]["base"] = str(model)
    repo = root / "repo"
    repo.mkdir()
    _make_repo(repo, params)
    result = _run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo


@pytest.mark.slow
def test_one_iteration_runs_on_dataset_tasks_and_a_chat_model(repro: Path) -> None:
    out = _run(
        [
            "dits",
            "sql",
            "SELECT task, pool, count(*) AS n FROM tasks GROUP BY ALL ORDER BY ALL",
            "--format",
            "csv",
        ],
        repro,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [
        "arc,search,2", "arc,sft,8", "arc,test,10", "arc,val,4",
        "cbt,search,2", "cbt,sft,8", "cbt,test,10", "cbt,val,4",
    ]  # fmt: skip
    evals = _run(
        ["dits", "sql", "SELECT model, count(*) AS n FROM eval GROUP BY ALL ORDER BY ALL", "--format", "csv"],
        repro,
    )
    assert evals.stdout.splitlines() == ["model,n", "base,20", "dpo,20", "sft,20"]
    metrics = json.loads((repro / "metrics" / "iter=0.json").read_text())
    assert set(metrics["eval"]) == {"cbt", "arc"}


@pytest.mark.slow
def test_every_row_traces_back_to_its_dataset_record(repro: Path) -> None:
    query = (
        "SELECT DISTINCT t.source_id FROM dialogues d JOIN tasks t USING (example_id) "
        "WHERE t.task = 'arc' ORDER BY 1"
    )
    out = _run(["dits", "sql", query, "--format", "csv"], repro)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [f"Train_{i}" for i in range(8)]


@pytest.mark.slow
def test_toa_stages_say_why_they_skip_dataset_tasks_without_toa_models(repro: Path) -> None:
    reason = json.loads((repro / "metrics" / "toa" / "eval.json").read_text())["skipped"]
    assert reason.startswith("TOA skipped: toa.models is empty and cbt, arc are dataset tasks")
    shown = _run(["dits", "show"], repro)
    assert shown.returncode == 0 and reason in shown.stdout


@pytest.mark.slow
def test_every_trained_model_differs_from_the_model_it_started_from(repro: Path) -> None:
    """The small profile trains for real: SFT moves the base, DPO moves SFT (no step at learning rate 0)."""

    def weights(path: Path) -> dict:
        return load_file(path / "model.safetensors")

    base = weights(repro.parent / "chat-model")
    for task in ("cbt", "arc"):
        sft = weights(repro / "models" / "sft" / "iter=0" / task)
        dpo = weights(repro / "models" / "dpo" / "iter=0" / task)
        for start, trained in ((base, sft), (sft, dpo)):
            assert max((trained[k].float() - start[k].float()).abs().max().item() for k in start) > 0
