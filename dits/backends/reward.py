"""A TOA reward model at inference: a scalar head's score of (prompt, response) rows, in batches.

The paper scores responses with a published RM (ArmoRM), one pair at a time, an exception giving
0.0; this scorer has no fallback: a row it cannot score is an error. It renders a row exactly as
TRL's ``RewardTrainer`` tokenizes a conversational one and pads it on the right as TRL's collator
does, so a score is what training optimised (``dits.toa.reward_model`` trains it). Stages open it
through ``dits.backends.factory.scorer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoModelForSequenceClassification

from dits.backends.base import Chat
from dits.backends.limits import length_limit
from dits.backends.load import default_device
from dits.backends.render import load_tokenizer, model_files
from dits.errors import DitsError


class RewardScorer:
    """Scores (prompt, response) rows with a reward model: the head's scalar at the row's last token."""

    def __init__(self, model, tokenizer, batch_size: int):
        if model.config.pad_token_id is None:  # the head finds a row's last token by its padding
            raise DitsError(f"{model.config._name_or_path}: reward model has no pad_token_id in its config")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # no default: every caller passes its params' batch size
        self.pad_id = model.config.pad_token_id
        self.max_length = length_limit(tokenizer.model_max_length, model, tokenizer)  # the model's own

    @classmethod
    def from_path(cls, path: str | Path, batch_size: int, device: str | None = None) -> RewardScorer:
        """Load a directory written by ``train_reward_model``, in eval mode, on ``device``."""
        tokenizer = load_tokenizer(path)
        with model_files(path):
            model = AutoModelForSequenceClassification.from_pretrained(
                str(path), dtype=torch.float32, local_files_only=True
            )
        if model.config.num_labels != 1:
            raise DitsError(
                f"{path}: not a reward model (num_labels = {model.config.num_labels}, expected 1)"
            )
        return cls(model.to(device or default_device()).eval(), tokenizer, batch_size)

    def render(self, prompts: Sequence[Chat], responses: Sequence[str]) -> list[list[int]]:
        """Return each row's token ids as RewardTrainer makes them from a conversational row.

        TRL appends the assistant message to the prompt and tokenizes the chat in one
        ``apply_chat_template(..., tokenize=True)`` call (``trl.data_utils._tokenize``), which adds
        no special tokens beyond the template's own; rendering to text and tokenizing that would
        not always give the same ids.
        """
        return [
            self.tokenizer.apply_chat_template(
                [*prompt, {"role": "assistant", "content": response}], tokenize=True, return_dict=True
            )["input_ids"]
            for prompt, response in zip(prompts, responses, strict=True)
        ]

    @torch.inference_mode()
    def score(self, prompts: Sequence[Chat], responses: Sequence[str]) -> list[float]:
        """Return r(prompt, response) per row, one forward pass per ``batch_size`` rows."""
        rows = self.render(prompts, responses)
        for i, row in enumerate(rows, start=1):
            if len(row) > self.max_length:
                raise DitsError(
                    f"reward model: row {i} has {len(row)} tokens, more than the model's {self.max_length}"
                )
        scores: list[float] = []
        for start in range(0, len(rows), self.batch_size):
            batch = [torch.tensor(row) for row in rows[start : start + self.batch_size]]
            # Right padding keeps every row's positions as in training; the head reads the
            # rightmost non-pad token, so left padding would also pick the right token.
            ids = pad_sequence(batch, batch_first=True, padding_value=self.pad_id)
            mask = pad_sequence([torch.ones_like(row) for row in batch], batch_first=True)
            logits = self.model(
                input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)
            )
            scores += logits.logits[:, 0].float().tolist()
        return scores

    def pair_accuracy(self, pairs: Sequence[dict]) -> list[bool]:
        """Return, per pair, whether r(chosen) > r(rejected); a tie counts as a miss."""
        responses = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
        rewards = self.score([pair["prompt"] for pair in pairs] * 2, responses)
        return [c > r for c, r in zip(rewards[: len(pairs)], rewards[len(pairs) :], strict=True)]
