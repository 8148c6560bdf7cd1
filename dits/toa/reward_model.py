"""TOA's reward model (arXiv 2412.17061): a scalar head on a causal LM, trained on preference pairs.

The paper scores responses with a published RM (ArmoRM), one pair at a time, an exception giving
0.0. Here the RM is trained with TRL's ``RewardTrainer`` (Bradley-Terry loss on chosen vs rejected)
and ``dits.backends.reward.RewardScorer`` scores in batches with no fallback: a row it cannot
score is an error.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoModelForSequenceClassification, set_seed

from dits.backends.limits import length_limit
from dits.backends.load import default_device
from dits.backends.render import load_tokenizer, model_files
from dits.backends.reward import RewardScorer
from dits.errors import DitsError
from dits.progress import log
from dits.seeds import content_id
from dits.train.arguments import FP32, Recipe, save_trained
from dits.train.guard import MovesGuard

FIELDS = {"prompt": list, "chosen": str, "rejected": str}


def check_pairs(pairs: Sequence[dict]) -> None:
    """Raise a one-line DitsError naming the first row and field that is not a pair."""
    if not pairs:
        raise DitsError("reward model: no pairs to train on")
    for i, pair in enumerate(pairs, start=1):
        for field, kind in FIELDS.items():
            if field not in pair:
                raise DitsError(f"reward model pairs: row {i} has no {field!r} field")
            if not isinstance(pair[field], kind):
                raise DitsError(
                    f"reward model pairs: row {i}: {field!r} must be a {kind.__name__}, "
                    f"got {type(pair[field]).__name__}"
                )
        chat = pair["prompt"]
        if not chat or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in chat):
            raise DitsError(
                f"reward model pairs: row {i}: 'prompt' must be a non-empty list of {{role, content}}"
            )


def split_pairs(pairs: Sequence[dict], held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Return (train, held-out) row indices; ``held_out`` of the pairs, at least one when there are two.

    The held-out rows are those with the smallest seeded content key, so a pair stays on its side
    whatever order the pairs come in (the per-row rule of ``dits.seeds``), and one pair is always
    left to train on.
    """
    n = len(pairs)
    size = min(n - 1, max(1, round(held_out * n))) if n >= 2 else 0
    keys = [content_id(seed, json.dumps([p["prompt"], p["chosen"], p["rejected"]])) for p in pairs]
    order = sorted(range(n), key=lambda i: (keys[i], i))
    return sorted(order[size:]), sorted(order[:size])


def reward_rows(pairs: Sequence[dict]) -> list[dict]:
    """Return RewardTrainer's conversational rows with an explicit prompt (role and content only)."""
    return [
        {
            "prompt": [{"role": m["role"], "content": m["content"]} for m in pair["prompt"]],
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}],
        }
        for pair in pairs
    ]


def train_reward_model(
    base: str | Path,
    pairs: Sequence[dict],
    out: Path,
    *,
    learning_rate: float,
    epochs: float,
    batch_size: int,
    max_length: int,
    held_out: float,
    seed: int,
    label: str = "reward model",
    min_steps: int = 1,
    recipe: Recipe = FP32,
) -> dict:
    """Train a reward model from ``base`` on the pairs outside the held-out split; save it to ``out``.

    Pairs are dicts with ``prompt`` (a chat), ``chosen`` and ``rejected`` (assistant messages).
    RewardTrainer drops rows over the token limit; both splits drop them here first, so the
    counts report what was trained and measured. Returns the loss curve, the train pair accuracy,
    and the held-out pair accuracy with its binomial standard error and n. The accuracies are
    measured on the saved model, so a sharded run (``dits.train.world``) scores what it wrote; in
    several processes only the main one measures and reports, the others return an empty dict.
    ``recipe`` sets precision, checkpointing and full or LoRA (the score head then trains in full
    beside the adapters).
    """
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    check_pairs(pairs)
    if not 0 < held_out < 1:
        raise DitsError(f"reward model: held_out = {held_out}: must be a fraction in (0, 1)")
    tokenizer = load_tokenizer(base)  # a pad token (Llama-3 has none: its end of text serves)
    set_seed(seed)  # the new score head is drawn when the model loads
    with model_files(base), suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base), num_labels=1, dtype=recipe.dtype, local_files_only=True
        )
    model.config.pad_token_id = tokenizer.pad_token_id  # RewardTrainer sets it too; the scorer needs it first
    scorer = RewardScorer(model.to(default_device()), tokenizer, batch_size)
    limit = length_limit(max_length, model, tokenizer)
    lengths = [len(ids) for ids in scorer.render([p["prompt"] for p in pairs] * 2, _responses(pairs))]
    longest = [max(c, r) for c, r in zip(lengths[: len(pairs)], lengths[len(pairs) :], strict=True)]
    train_idx, held_idx = split_pairs(pairs, held_out, seed)
    train = [pairs[i] for i in train_idx if longest[i] <= limit]
    held = [pairs[i] for i in held_idx if longest[i] <= limit]
    if not train:
        raise DitsError(
            f"reward model: max_length = {max_length}: all {len(train_idx)} training pairs are longer than "
            f"the {limit} tokens allowed (the shortest has {min(longest[i] for i in train_idx)}); raise it"
        )
    steps = math.ceil(math.ceil(len(train) / batch_size) * epochs)
    with tempfile.TemporaryDirectory(prefix="dits-rm-") as tmp:
        args = RewardConfig(
            **recipe.arguments(tmp, seed=seed, logging_steps=max(1, steps // 5), warmup=0.1),
            learning_rate=learning_rate,
            num_train_epochs=epochs,
            **recipe.batching(batch_size, "toa.reward_model.batch_size"),
            max_length=limit,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(reward_rows(train)),
            processing_class=tokenizer,
            peft_config=recipe.peft_config("SEQ_CLS"),
            callbacks=[MovesGuard(label, len(train), batch_size, min_steps)],
        )
        trainer.train()
        loss = [round(r["loss"], 4) for r in trainer.state.log_history if "loss" in r]
        save_trained(trainer, out)
        if not trainer.args.should_save:
            return {}
    scorer = RewardScorer.from_path(out, batch_size)
    train_hits, held_hits = scorer.pair_accuracy(train), scorer.pair_accuracy(held)
    accuracy = sum(held_hits) / len(held_hits) if held_hits else None
    se = None if accuracy is None else math.sqrt(accuracy * (1 - accuracy) / len(held_hits))
    metrics = {
        "pairs": len(pairs),
        "dropped": len(pairs) - len(train) - len(held),
        "loss": loss,
        "train_n": len(train),
        "train_accuracy": round(sum(train_hits) / len(train_hits), 4),
        "held_out_n": len(held_hits),
        "held_out_accuracy": None if accuracy is None else round(accuracy, 4),
        "held_out_se": None if se is None else round(se, 4),
    }
    log(f"reward model: {len(train)} pairs, loss {loss}, held-out accuracy {metrics['held_out_accuracy']}")
    return metrics


def _responses(pairs: Sequence[dict]) -> list[str]:
    return [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]


def fit_reward(fit) -> dict:
    """The ``Fit`` trainer of TOA's reward model (``train_reward_model`` on ``fit.rows``, the pairs)."""
    fit.recipe.check(fit.label)
    return train_reward_model(
        fit.model,
        fit.rows,
        Path(fit.out),
        seed=fit.seed,
        label=fit.label,
        min_steps=fit.min_steps,
        recipe=fit.recipe,
        **fit.settings,
    )
