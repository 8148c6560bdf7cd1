"""Influence estimators over pair groups, one interface: a score per group.

- ``finite_difference`` (the paper, Eq. 14): F_val(θ_g) − F_val(θ*) over the same validation
  episodes, divided by the step size. F_val is the task score (F1, exact match) of the whole
  two-agent dialogue: non-differentiable, measured by inference.
- ``grad_similarity`` (a LESS-style baseline): cosine between the group's DPO-loss gradient at θ*
  and the SFT-loss gradient of a reference set (the SFT model's successful validation dialogues).
  A positive cosine means the step on the group lowers the loss of good dialogues.

Episodes are shared by θ* and every θ_g: the same questions, the same context split and, under
``crn`` decoding, the same per-episode sampling seeds (common random numbers), so a difference
isolates the step and not the dice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from dits.backends.base import Backend, Chat, Sampling
from dits.backends.render import assistant_tokens
from dits.dialogue import AGENTS, Dialogue, play
from dits.errors import DitsError
from dits.influence.replay import first_divergence, resume
from dits.seeds import derive_seed
from dits.tasks.base import Example, Task

if TYPE_CHECKING:
    from dits.config import EvaluateParams, InfluenceParams, SampleParams


@dataclass(frozen=True)
class Validation:
    """Per adapter (rows) and episode (columns): task score and tokens of the dialogue."""

    scores: np.ndarray
    tokens: np.ndarray
    dialogues: list[Dialogue]
    replayed: int = 0  # dialogues taken from θ*'s by greedy replay, not decoded


def episodes(examples: Sequence[Example], influence: InfluenceParams, seed: int) -> list[tuple[Example, int]]:
    """Return the validation episodes: (question, seed), one per question, S per question under crn."""
    per_question = 1 if influence.decoding == "greedy" else influence.crn_seeds
    return [
        (ex, derive_seed(seed, "validate", ex.example_id, s)) for ex in examples for s in range(per_question)
    ]


def validate(
    backend: Backend,
    task: Task,
    episode_list: Sequence[tuple[Example, int]],
    adapters: Sequence[int | None],
    influence: InfluenceParams,
    evaluate: EvaluateParams,
    sample: SampleParams,
    progress: Callable[[int], None] | None = None,
    draft: Sequence[Dialogue] | None = None,
) -> Validation:
    """Play every episode once per adapter, all adapters' dialogues in lockstep (one call per turn).

    The decoding comes from ``influence`` (greedy, or crn at ``crn_temperature``), a message's
    token limit from ``evaluate`` and the dialogue's message limit from ``sample``, so validation
    plays dialogues as evaluation and sampling do. ``draft`` holds θ*'s greedy dialogue of each
    episode: with ``influence.replay`` under greedy decoding, an adapter's episode that would
    repeat θ*'s dialogue token for token is taken from it, and only the others are decoded, from
    their first differing message (``dits.influence.replay``).
    """
    greedy = influence.decoding == "greedy"
    if draft is not None and greedy and influence.replay and adapters:
        if None in adapters:
            raise ValueError("validate: replay checks perturbed adapters only (got adapter None)")
        divergence = first_divergence(backend, draft, adapters)
    else:
        divergence = [[0] * len(episode_list) for _ in adapters]
    dialogues, to_play = [], []
    for adapter, firsts in zip(adapters, divergence, strict=True):
        for (ex, seed), first, known in zip(episode_list, firsts, draft or [None] * len(firsts), strict=True):
            if first is None:
                dialogues.append(dataclasses.replace(known, adapter=adapter, messages=list(known.messages)))
                continue
            dialogue = (
                Dialogue(ex, task.family, seed=seed, adapter=adapter)
                if known is None
                else resume(known, first, adapter, sample.max_messages)
            )
            dialogues.append(dialogue)
            to_play.append(dialogue)
    if progress is not None and len(to_play) < len(dialogues):
        progress(len(dialogues) - len(to_play))
    temperature = 0.0 if greedy else influence.crn_temperature
    play(
        backend,
        to_play,
        Sampling(temperature, 1.0, evaluate.max_new_tokens),
        sample.max_messages,
        progress,
    )
    shape = (len(adapters), len(episode_list))
    scores = np.array([task.score(d.answer or "", d.example) for d in dialogues]).reshape(shape)
    tokens = np.array([d.tokens for d in dialogues]).reshape(shape)
    return Validation(scores, tokens, dialogues, replayed=len(dialogues) - len(to_play))


@dataclass(frozen=True)
class GroupScore:
    group_id: int
    score: float | None  # None: the estimator has nothing to measure against (no reference gradient)
    f_perturbed: float | None
    f_base: float | None
    changed_episodes: int
    val_tokens: int


def finite_difference(warm: np.ndarray, perturbed: Validation, step_size: float) -> list[GroupScore]:
    """Eq. 14: I(g) = (F_val(θ_g) − F_val(θ*)) / step size, F_val the mean episode score.

    ``warm`` holds θ*'s episode scores; row g of ``perturbed`` is group g on the same episodes.
    ``changed_episodes`` counts episodes whose score moved, the first thing to look at when every
    influence is 0.
    """
    f_base = float(warm.mean())
    out = []
    for g, (scores, tokens) in enumerate(zip(perturbed.scores, perturbed.tokens, strict=True)):
        f = float(scores.mean())
        out.append(
            GroupScore(
                group_id=g,
                score=(f - f_base) / step_size,
                f_perturbed=f,
                f_base=f_base,
                changed_episodes=int((scores != warm).sum()),
                val_tokens=int(tokens.sum()),
            )
        )
    return out


def reference_chats(validation: Validation, row: int = 0, threshold: float = 1.0) -> list[Chat]:
    """Return both agents' views of the dialogues of adapter ``row`` scoring at least ``threshold``."""
    n = validation.scores.shape[1]
    chats = []
    for j, dialogue in enumerate(validation.dialogues[row * n : (row + 1) * n]):
        if validation.scores[row, j] >= threshold and dialogue.messages:
            chats += [dialogue.view(agent) for agent in AGENTS]
    return chats


def sft_loss(
    model, tokenizer, chats: Sequence[Chat], influence: InfluenceParams, backward: bool = False
) -> float:
    """Return the mean SFT loss on each chat's assistant tokens; with ``backward`` also accumulate grads.

    The assistant tokens are ``dits.backends.render.assistant_tokens``'s, the SFT rows' own, so this is
    the SFT objective on the agents' own messages under any chat template. Chats go through the model
    as many at a time as one warm-up step has rows (2 · ``influence.warmup_batch``: a chosen and
    a rejected sequence per pair), a backward pass of the size the stage already takes. The batch
    moves the summed gradient by float rounding, so it follows a param, not a caller's default.
    """
    batch_size = 2 * influence.warmup_batch
    encoded = [assistant_tokens(tokenizer, chat) for chat in chats]  # (ids, mask) per chat
    total = sum(sum(mask) for _, mask in encoded)
    if total == 0:
        raise DitsError(f"sft_loss: none of the {len(chats)} chats has an assistant token; nothing to score")
    device = next(model.parameters()).device
    value = 0.0
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        width = max(len(row) for row, _ in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, device=device)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, (row, own) in enumerate(batch):
            n = len(row)
            ids[i, :n] = torch.tensor(row, device=device)
            mask[i, :n] = 1
            keep = torch.tensor(own, device=device).bool()
            labels[i, :n] = torch.where(keep, ids[i, :n], -100)
        with torch.set_grad_enabled(backward):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            loss = (
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), reduction="sum"
                )
                / total
            )
        if backward:
            loss.backward()
        value += loss.item()
    return value


def sft_gradient(model, tokenizer, chats: Sequence[Chat], influence: InfluenceParams) -> torch.Tensor:
    """Return the gradient of ``sft_loss`` over the LoRA tensors (the reference of grad_similarity)."""
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    for p in params:
        p.grad = None
    model.eval()
    sft_loss(model, tokenizer, chats, influence, backward=True)
    gradient = torch.cat([p.grad.detach().flatten() for p in params])
    for p in params:
        p.grad = None
    return gradient


def grad_similarity(gradients: Sequence[torch.Tensor], reference: torch.Tensor) -> list[GroupScore]:
    """Cosine between each group's DPO gradient and the reference SFT gradient (0 without a reference)."""
    out = []
    for g, gradient in enumerate(gradients):
        denom = float(gradient.norm() * reference.norm())
        score = float(gradient @ reference) / denom if denom > 0 else 0.0
        out.append(GroupScore(g, score, None, None, 0, 0))
    return out
