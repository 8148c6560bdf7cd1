"""Warm-up LoRA and one-step perturbations: the θ* and θ_g of DITS influence (arXiv 2502.00955).

The authors' code trains a warm-up LoRA with DPO on the iteration's pairs (θ*), then, per group of
pairs, reloads that adapter, builds a fresh ``DPOTrainer`` and takes one optimizer step with a fresh
AdamW (θ_g). Here one PEFT model serves the whole stage: the reference log-probs (the SFT model, the
adapter disabled) are computed once per pair, the warm-up state is copied back into the LoRA tensors
after every step, and each θ_g is kept as a detached copy of those tensors for the adapter stack.

The DPO loss is written out (a dozen lines) rather than taken from TRL because TRL's trainer costs
a rebuild per group (``benchmarks/influence.py`` measures it); it mirrors TRL 1.16's conversational
tokenization (prompt with the generation prompt, completion = the rest of prompt+message, end token
included), ``keep_start`` truncation, token-summed log-probs and the sigmoid loss, so the first AdamW
step moves the same tensors in the same direction as the authors' path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from dits.backends.stack import LoRAState, load_lora_state, lora_state

if TYPE_CHECKING:
    from dits.config import InfluenceParams

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TokenizedPair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


def tokenize_pair(tokenizer, row: dict, max_length: int) -> TokenizedPair:
    """Return a conversational DPO row's token ids exactly as TRL 1.16's DPOTrainer builds them."""

    def ids(messages: list[dict], generation_prompt: bool = False) -> list[int]:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt = ids(row["prompt"], generation_prompt=True)
    chosen = ids(row["prompt"] + row["chosen"])
    rejected = ids(row["prompt"] + row["rejected"])
    cut = min(_common_prefix(prompt, chosen), _common_prefix(prompt, rejected))
    prompt, chosen, rejected = prompt[:cut], chosen[cut:], rejected[cut:]
    room = max(max_length - len(prompt), 0)  # keep_start: the sequence's end is cut, never the prompt
    return TokenizedPair(prompt[:max_length], chosen[:room], rejected[:room])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def sequence_logps(model, pairs: Sequence[TokenizedPair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (chosen, rejected) log-probs summed over each completion's tokens, batch [chosen; rejected]."""
    rows = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    width = max(len(a) + len(b) for a, b in rows)
    device = next(model.parameters()).device
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    completion = torch.zeros_like(ids)
    for i, (prompt, done) in enumerate(rows):
        n = len(prompt) + len(done)
        ids[i, :n] = torch.tensor(prompt + done, device=device)
        mask[i, :n] = 1
        completion[i, len(prompt) : n] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    logps = (token_logps * completion[:, 1:]).sum(-1)
    return logps[: len(pairs)], logps[len(pairs) :]


def dpo_loss(
    model, pairs: Sequence[TokenizedPair], reference: torch.Tensor, beta: float, pad_id: int
) -> torch.Tensor:
    """Mean sigmoid DPO loss; ``reference`` holds the pairs' reference log-probs, shape [n, 2]."""
    chosen, rejected = sequence_logps(model, pairs, pad_id)
    margin = (chosen - reference[:, 0]) - (rejected - reference[:, 1])
    return -F.logsigmoid(beta * margin).mean()


def groups_of(n_pairs: int, group_size: int, seed: int) -> list[list[int]]:
    """Shuffle pair indices with ``seed`` and cut them into consecutive groups of ``group_size``.

    As in the authors' code, an incomplete last group is dropped: its pairs get no score.
    """
    order = np.random.default_rng(seed).permutation(n_pairs).tolist()
    return [order[i : i + group_size] for i in range(0, n_pairs - group_size + 1, group_size)]


def warmup_schedule(pool: int, influence: InfluenceParams) -> Callable[[int], float]:
    """Return the warm-up's learning-rate factor per step: linear 1% warm-up, then cosine.

    The cosine spans ``max(warmup_steps, pool // warmup_batch)`` steps, one epoch of the pool as
    in the authors' trainer when that epoch is longer than the warm-up (``Perturbation.warm_up``).
    """
    horizon = max(influence.warmup_steps, pool // influence.warmup_batch)
    warmup = max(1, math.ceil(0.01 * horizon))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, horizon - warmup)))

    return factor


class Perturbation:
    """One PEFT model holding θ* (the warm-up adapter) and producing every θ_g from it.

    ``influence`` gives the LoRA, the warm-up and the step (its other fields are not read here);
    ``seed`` seeds the LoRA's initial weights and the warm-up's batches.
    """

    def __init__(self, model, tokenizer, rows: Sequence[dict], influence: InfluenceParams, seed: int):
        from peft import LoraConfig, get_peft_model

        self.influence = influence
        self.seed = seed
        self.pad_id = tokenizer.pad_token_id
        config = LoraConfig(
            r=influence.r,
            lora_alpha=influence.lora_alpha,
            lora_dropout=influence.lora_dropout,
            target_modules=list(TARGETS),
        )
        torch.manual_seed(seed)
        self.model = get_peft_model(model, config)
        self.lora = [p for n, p in self.model.named_parameters() if "lora_" in n]
        self.pairs = [tokenize_pair(tokenizer, row, influence.max_length) for row in rows]
        self.reference = self._reference_logps()
        self.warm: LoRAState = lora_state(self.model)

    @torch.no_grad()
    def _reference_logps(self) -> torch.Tensor:
        """Log-probs of the SFT model (adapter disabled), the DPO reference, once per pair.

        The pairs go through the model ``warmup_batch`` at a time, the warm-up's own batch, which
        sets the memory this takes and not the result (on CPU a pair's log-probs are bit-identical
        at 8, 16 or 128 pairs per pass).
        """
        self.model.eval()
        out = []
        size = self.influence.warmup_batch
        with self.model.disable_adapter():
            for start in range(0, len(self.pairs), size):
                chosen, rejected = sequence_logps(self.model, self.pairs[start : start + size], self.pad_id)
                out.append(torch.stack([chosen, rejected], dim=1))
        return torch.cat(out) if out else torch.zeros((0, 2))

    def warm_up(self, on: Sequence[int] | None = None) -> list[float]:
        """Train θ* for ``warmup_steps`` DPO steps over the pool (cosine, 1% warm-up as the paper).

        The authors train one epoch of the whole pool and keep ``checkpoint-50``, so the cosine
        spans the epoch and the learning rate is still near its peak at step 50 on a large pool.
        The schedule here spans ``max(warmup_steps, one epoch of steps)``: the authors' schedule
        when an epoch is longer than the warm-up, and a complete decay when it is shorter (their
        run would have no step-50 checkpoint then). Batches cycle through seeded reshuffles of the
        pool (or of the pairs ``on``), as epochs of a trainer would. Returns each step's loss.
        """
        s = self.influence
        pool = list(range(len(self.pairs))) if on is None else list(on)
        if not pool or s.warmup_steps == 0:
            return []
        self.model.train()
        params = self.lora
        optimizer = torch.optim.AdamW(params, lr=s.warmup_lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_schedule(len(pool), s))
        rng = np.random.default_rng(self.seed)
        queue: list[int] = []
        losses = []
        torch.manual_seed(self.seed)
        for _ in range(s.warmup_steps):
            while len(queue) < s.warmup_batch:
                queue += [pool[i] for i in rng.permutation(len(pool))]
            batch, queue = queue[: s.warmup_batch], queue[s.warmup_batch :]
            loss = dpo_loss(
                self.model, [self.pairs[i] for i in batch], self.reference[batch], s.beta, self.pad_id
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        self.model.eval()
        self.warm = lora_state(self.model)
        return losses

    def step(self, group: Sequence[int]) -> tuple[LoRAState, torch.Tensor]:
        """Return θ_g (one fresh-AdamW step on the group from θ*) and the group's loss gradient.

        Dropout is off (eval mode, gradients on), so θ_g depends on the group alone, never on
        which groups came before it or which shard it runs in. The first AdamW step is ≈
        step_lr·sign(gradient) (Adam's bias correction), so ``step_lr`` is the step size. θ* is
        restored bit for bit afterwards. The gradient (flattened over the LoRA tensors, at θ*)
        is what the ``grad_similarity`` estimator compares.
        """
        s = self.influence
        if self.model.training:
            self.model.eval()
        params = self.lora
        optimizer = torch.optim.AdamW(params, lr=s.step_lr, weight_decay=0.0)
        optimizer.zero_grad()
        group = list(group)
        loss = dpo_loss(
            self.model, [self.pairs[i] for i in group], self.reference[group], s.beta, self.pad_id
        )
        loss.backward()
        gradient = torch.cat([p.grad.detach().flatten() for p in params])
        optimizer.step()
        perturbed = lora_state(self.model)
        load_lora_state(self.model, self.warm)
        for p in params:
            p.grad = None
        return perturbed, gradient
