"""The paper's profile, ``profiles/hotpotqa-llama3-8b.yaml``, end to end through `dvc repro` on a CPU.

Every size key is overridden down (SIZES); the dataset, model and TOA model paths are the test's
(PATHS): HotpotQA in its published layout, a random 2-layer Llama with Llama-3's tokenizer layout
and chat template for the base model, and for TOA's four models four such Llamas, each taught in a
few steps to answer with its own few words, so their answers differ and the reward model has
pairs to learn from. Everything else runs as shipped: bf16, LoRA, gradient checkpointing,
micro-batches, the thresholds' and reward's values, TOA's six methods. The run's ``dvc.lock`` then
shows that each key the profile sets reached a stage that ran, with the profile's value, except
the keys of paths this configuration does not take (INACTIVE, each with its reason).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from test_pipeline import REPO, _make_repo, _run
from tiny import tiny_chat_model

PROFILE = REPO / "profiles" / "hotpotqa-llama3-8b.yaml"
WORDS = "ball box cat day dog garden hat house king tree".split()

SIZES = {
    "iterations": [{"k": 0, "policy": "models/base"}],
    "task": {"sft_examples": 6, "search_examples": 16, "val_examples": 2, "test_examples": 3},
    "reward": {"token_floor": 4, "token_cap": 40},
    "sample": {"samples_per_example": 2, "max_new_tokens": 12, "max_messages": 4},
    "sft": {"batch_size": 4, "min_reward": -10.0},
    "search": {"selections": 4, "rollouts": 1, "normaliser_dialogues": 4, "shards": 1},
    "pairs": {"exchange_q_min": -10.0, "gap": 0.0},
    "influence": {
        "warmup_steps": 2,
        "warmup_batch": 2,
        "group_size": 1,
        "val_episodes": 2,
        "shards": 1,
    },
    "dpo": {"batch_size": 1},
    "evaluate": {"max_new_tokens": 12},
    "toa": {
        "questions": 6,
        "budgets": [1, 2],
        "max_new_tokens": 12,
        "reject_rank": 3,
        "shards": 1,
        "reward_model": {"questions": 6, "batch_size": 2, "max_length": 256},
    },
    "train": {"micro_batch_size": 1},
    "backend": {"name": "hf", "batch_size": 16},
}

# Keys of paths this run does not take, and why; every other key must reach a stage that runs.
INACTIVE = {
    "bootstrap": "model.base is a checkpoint: the embedded model is not built",
    "toa.policies": "toa.models names the policies: the embedded ones are not built",
    "backend.vllm": "vLLM on CPU is tests/test_vllm_pipeline.py's; this run uses backend.name hf",
    "backend.launcher": "local; Ray is tests/test_launch.py's",
    "backend.ray": "backend.launcher is local",
    "train.launcher": "local; torchrun and accelerate are tests/test_distributed.py's",
    "train.processes": "train.launcher is local",
    "train.accelerate_config": "train.launcher is local",
    "reward.debate": "HotpotQA is an information-exchange task",
    "pairs.debate_q_min": "HotpotQA is an information-exchange task",
    "search.ucb_c": "search.policy is softmax",
    "influence.crn_seeds": "influence.decoding is greedy",
    "influence.crn_temperature": "influence.decoding is greedy",
}


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"a.b.c": value}`` for every leaf of a nested dict (lists are values)."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _record(split: str, i: int) -> dict:
    """A HotpotQA record in the published format whose answer is one of WORDS."""
    gold, other = WORDS[i % 10], WORDS[(i + 3) % 10]
    return {
        "_id": f"{split}{i}",
        "question": f"Which thing did the {other} {i} see?",
        "answer": gold,
        "type": "bridge",
        "level": "easy",
        "supporting_facts": [[f"Page {i}", 0], [f"Note {i}", 0]],
        "context": [
            [f"Page {i}", [f"The {other} {i} saw the {gold}.", " Later."]],
            [f"Note {i}", [f"The {gold} was by the {other}."]],
            [f"Other {i}", [f"The {WORDS[(i + 5) % 10]} slept."]],
        ],
    }


def _hotpotqa(root: Path) -> Path:
    """HotpotQA as published: 60 train and 5 dev records."""
    root.mkdir(parents=True)
    (root / "hotpot_train_v1.1.json").write_text(json.dumps([_record("train", i) for i in range(60)]))
    (root / "hotpot_dev_distractor_v1.json").write_text(json.dumps([_record("dev", i) for i in range(5)]))
    return root


def _example(i: int):
    """Record ``i`` as an exchange question, in the shape TOA's prompts take."""
    from dits.tasks.base import Example

    r = _record("train", i)
    facts = tuple(" ".join(sentences) for _, sentences in r["context"][:2])
    return Example(f"x{i}", r["question"], facts, (r["answer"],), prompts="exchange")


def _prompts() -> list[str]:
    """The dialogue's and TOA's prompts for one record: the tokenizer learns their words, so a prompt
    fits the profile's token limits as it does Llama-3's vocabulary, not one byte a token."""
    from dits.dialogue import system_prompt
    from dits.toa.prompts import answer_chat, refine_chat

    example = _example(0)
    chats = [answer_chat(example, "exchange"), refine_chat(example, "exchange", "<A>dog</A>")]
    return [system_prompt("exchange", a, example) for a in ("Alice", "Bob")] + [
        c[0]["content"] for c in chats
    ]


def _policy(path: Path, texts: list[str], words: list[str], seed: int) -> None:
    """A random chat Llama taught, in a few SFT steps on TOA's answer prompt, to answer
    ``<A>word</A>`` with one of ``words``."""
    from dits.backends.load import load_model
    from dits.config import SFTParams
    from dits.toa.prompts import answer_chat
    from dits.train.sft import train_sft

    tiny_chat_model(path, texts)
    model, tokenizer = load_model(str(path))
    chats = [
        [
            *answer_chat(_example(i), "exchange"),
            {"role": "assistant", "content": f"<A>{words[i % len(words)]}</A>"},
        ]
        for i in range(32)
    ]
    sft = SFTParams(learning_rate=2e-2, epochs=12.0, batch_size=8, max_length=512)
    train_sft(model, tokenizer, chats, sft, seed=seed, warmup_ratio=0.0, out=path)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("profile-8b")
    texts = [" ".join(WORDS), "Which thing did the cat 3 see? <A>cat</A>", "Alice: Bob:", *_prompts()] * 30
    tiny_chat_model(root / "base", texts)
    policies = []
    for m in range(4):
        policies.append(str(root / f"policy-{m}"))
        _policy(root / f"policy-{m}", texts, WORDS[2 * m : 2 * m + 4], seed=m)
    params = _merge(yaml.safe_load(PROFILE.read_text()), SIZES)
    params["task"].update(
        paths={"hotpotqa": str(_hotpotqa(root / "hotpotqa"))}, slices={"hotpotqa": {"val_start": 0}}
    )
    params["model"]["base"] = str(root / "base")
    params["toa"]["models"] = policies
    repo = root / "repo"
    repo.mkdir()
    _make_repo(repo, params)
    result = _run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo, params


def _same(a: object, b: object) -> bool:
    """Equal values, a number also when YAML 1.1 reads one spelling as text (``5e-05`` without a dot)."""
    if a == b:
        return True
    try:
        return float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _inactive(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in INACTIVE)


@pytest.mark.slow
def test_every_key_the_profile_sets_reaches_a_stage_that_ran_with_its_value(run) -> None:
    repo, params = run
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    used: dict[str, list] = {}
    for stage in lock.values():
        for key, value in _leaves(stage.get("params", {}).get("params.yaml", {})).items():
            used.setdefault(key, []).append(value)
    wanted = {k: v for k, v in _leaves(params).items() if not _inactive(k)}
    missing = [k for k, v in wanted.items() if not any(_same(v, u) for u in used.get(k, []))]
    assert not missing, f"keys no stage ran with: {missing}"
    profile = _leaves(yaml.safe_load(PROFILE.read_text()))
    assert all(any(k == p or p.startswith(k + ".") for p in profile) for k in INACTIVE)  # none stale


@pytest.mark.slow
def test_trained_models_are_bf16_lora_merges_that_move(run) -> None:
    repo, _ = run
    base = load_file(repo.parent / "base" / "model.safetensors")
    sft_dir, dpo_dir = (repo / "models" / kind / "iter=0" / "hotpotqa" for kind in ("sft", "dpo"))
    sft, dpo = load_file(sft_dir / "model.safetensors"), load_file(dpo_dir / "model.safetensors")
    assert json.loads((dpo_dir / "config.json").read_text())["dtype"] == "bfloat16"
    assert set(sft) == set(base)  # adapters merged: a plain checkpoint, no lora_ weights
    assert {str(t.dtype) for t in dpo.values()} == {"torch.bfloat16"}
    for start, trained in ((base, sft), (sft, dpo)):
        assert max((trained[k].float() - start[k].float()).abs().max().item() for k in start) > 0
    reward = json.loads((repo / "metrics" / "toa" / "reward.json").read_text())
    assert reward["hotpotqa"]["pairs"] > 0


@pytest.mark.slow
def test_toa_runs_every_method_at_every_budget(run) -> None:
    repo, params = run
    query = "SELECT DISTINCT method, n FROM toa ORDER BY ALL"
    out = _run(["dits", "sql", query, "--format", "csv"], repo)
    assert out.returncode == 0, out.stderr
    expected = sorted(f"{m},{b}" for m in params["toa"]["methods"] for b in params["toa"]["budgets"])
    assert sorted(out.stdout.splitlines()[1:]) == expected
    evaluated = _run(["dits", "sql", "SELECT DISTINCT model FROM toa_eval", "--format", "csv"], repo)
    assert len(evaluated.stdout.splitlines()) > 2  # the base and at least one trained target
