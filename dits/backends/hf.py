"""Batched inference with transformers: left padding, KV cache, per-row seeds.

``generate`` runs its own decoding loop instead of ``model.generate`` because every row must
sample with its own seed: ``generate`` draws all rows from one global RNG, so a row's
text would depend on what else is in the batch. The loop is also leaner on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dits.backends import forced
from dits.backends.base import Chat, Forced, Generation, Sampling
from dits.backends.load import load_model
from dits.backends.render import end_ids, prompt_ids, turn_end, turn_ids
from dits.errors import DitsError

if TYPE_CHECKING:
    from dits.backends.stack import AdapterStack, LoRAState
    from dits.config import BackendParams


class HFBackend:
    """The Backend protocol over a transformers causal LM."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int, stack: AdapterStack | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # no default: every caller passes its params' batch size
        self.stack = stack  # serves per-row ``adapters`` in ``generate``
        self.end_ids = end_ids(getattr(model.generation_config, "eos_token_id", None), tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.turn_end = turn_end(tokenizer)

    @classmethod
    def from_path(cls, path: str | Path, batch_size: int, device: str | None = None) -> HFBackend:
        """Load a backend; ``batch_size`` has no default so that every stage passes its param."""
        model, tokenizer = load_model(path, device=device)
        return cls(model, tokenizer, batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def greedy_misses(self, rows: Sequence[Forced], adapters: Sequence[int]) -> list[list[int]]:
        return forced.greedy_misses(self, rows, adapters)

    @torch.inference_mode()
    def generate(
        self,
        chats: Sequence[Chat],
        sampling: Sampling,
        seeds: Sequence[int],
        adapters: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        """Return one generation per chat; ``adapters[i]`` indexes ``self.stack`` (None: no adapter)."""
        stack_rows = None
        if adapters is not None and any(a is not None for a in adapters):
            if self.stack is None:
                raise DitsError("HFBackend.generate: adapters given but the backend has no AdapterStack")
            stack_rows = torch.tensor([-1 if a is None else a for a in adapters], device=self.model.device)
        prompts = prompt_ids(self.tokenizer, chats)
        out: list[Generation] = []
        with nullcontext() if stack_rows is None else self.stack.active():
            try:
                for start in range(0, len(prompts), self.batch_size):
                    batch = slice(start, start + self.batch_size)
                    out += self._generate_batch(
                        prompts[batch],
                        sampling,
                        seeds[batch],
                        None if stack_rows is None else stack_rows[batch],
                    )
            finally:
                if stack_rows is not None:
                    self.stack.set_rows(None)  # frees the rows' gathered A/B
        return out

    def _generate_batch(
        self, ids: list[list[int]], sampling: Sampling, seeds: Sequence[int], stack_rows: torch.Tensor | None
    ) -> list[Generation]:
        generators = None
        if sampling.temperature > 0:
            device = self.model.device  # the noise is drawn where the logits are: they never leave it
            generators = [torch.Generator(device=device).manual_seed(int(s) % (2**63)) for s in seeds]
        past, logits, attention, positions = self._prefill(ids, stack_rows)
        rows = len(ids)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        finished = [False] * rows
        live = list(range(rows))  # original row of each row still in the batch
        for _ in range(sampling.max_new_tokens):
            row_generators = None if generators is None else [generators[i] for i in live]
            picked = self._pick(logits, sampling, row_generators).tolist()
            keep = []
            for j, (i, tok) in enumerate(zip(live, picked, strict=True)):
                if tok in self.end_ids:
                    finished[i] = True
                else:
                    tokens[i].append(tok)
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(live):
                # Finished rows leave the batch (KV cache included): in lockstep search one long
                # message would otherwise make every finished row compute until it ends.
                index = torch.tensor(keep, device=self.model.device)
                past.batch_select_indices(index)
                attention, positions = attention[index], positions[index]
                live = [live[j] for j in keep]
                picked = [picked[j] for j in keep]
                if stack_rows is not None:
                    stack_rows = stack_rows[index]
                    self.stack.set_rows(stack_rows)
            next_ids = torch.tensor(picked, device=self.model.device)
            attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(
                input_ids=next_ids[:, None],
                attention_mask=attention,
                position_ids=positions,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :]
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [
            Generation(text=t, tokens=len(ids), finish_reason="stop" if done else "length")
            for t, ids, done in zip(texts, tokens, finished, strict=True)
        ]

    def _prefill(self, ids: list[list[int]], stack_rows: torch.Tensor | None):
        """Run the prompts through the model, computing each shared prefix once.

        Dialogue rows share long prefixes: the samples of one question share each agent's system
        prompt, and the rollouts from one search node share the whole dialogue so far. The prefixes
        go through the model once (phase 1), their KV cache is copied to every row that shares
        them, and only each row's own suffix is computed (phase 2). Rows are left-padded in both
        phases, so a row's cache reads ``[pad, prefix, pad, suffix]`` and the attention mask hides
        both pads. Returns (cache, last logits, attention mask, last positions).
        """
        keys = [-1] * len(ids) if stack_rows is None else stack_rows.tolist()  # KV depends on the adapter
        cut = _shared_prefix_lengths(ids, keys)
        prefixes: dict[tuple, int] = {}
        rows = list(zip(keys, ids, cut, strict=True))
        owner = [prefixes.setdefault((k, tuple(row[:n])), len(prefixes)) for k, row, n in rows]
        split = len(prefixes) * max(cut) + len(ids) * max(len(row) - n for _, row, n in rows)
        if split >= len(ids) * max(map(len, ids)):  # sharing would not save padded tokens
            cut, prefixes = [0] * len(ids), {}
        suffix_ids, attention = self._left_pad([row[n:] for row, n in zip(ids, cut, strict=True)])
        offset = torch.tensor(cut, device=attention.device)[:, None]
        positions = (attention.cumsum(-1) - 1).clamp(min=0) + offset
        past = None
        if prefixes:
            prefix_ids, prefix_mask = self._left_pad([list(p) for _, p in prefixes])
            if stack_rows is not None:
                self.stack.set_rows(torch.tensor([k for k, _ in prefixes], device=self.model.device))
            past = self.model(
                input_ids=prefix_ids,
                attention_mask=prefix_mask,
                position_ids=(prefix_mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=True,
                logits_to_keep=1,
            ).past_key_values
            index = torch.tensor(owner, device=self.model.device)
            past.batch_select_indices(index)
            attention = torch.cat([prefix_mask[index], attention], dim=1)
        if stack_rows is not None:
            self.stack.set_rows(stack_rows)
        out = self.model(
            input_ids=suffix_ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,  # the prompt's other positions predict nothing we use
        )
        return out.past_key_values, out.logits[:, -1, :], attention, positions

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (ids, mask) of ``rows`` padded on the left to the longest."""
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    @staticmethod
    def _pick(
        logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator] | None
    ) -> torch.Tensor:
        """Greedy argmax, or top-p sampling with each row's own generator.

        A sample is ``argmax(p / q)`` with ``q ~ Exp(1)``, which is exactly what
        ``torch.multinomial(p, 1, generator=g)`` computes on CPU: each row draws its ``q`` from its
        own generator, and the division and argmax run once for the whole batch. Same tokens as a
        multinomial call per row, at about 60 % of the cost. The generators live on the logits'
        device (vLLM's sampler treats seeded requests the same way), so on a GPU the logits are
        never copied to the host; a seed therefore reproduces its row on the same kind of device.
        """
        if generators is None:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < sampling.top_p
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
        noise = torch.empty_like(probs)
        for row, generator in zip(noise, generators, strict=True):
            row.exponential_(generator=generator)
        return (probs / noise).argmax(-1)

    @torch.inference_mode()
    def loglik(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Mean per-token log-prob of each continuation as the next assistant turn (``turn_ids``).

        An empty continuation scores its end-of-message token alone: the log-probability of
        ending the turn at once. That is what the authors' scorer gives it (it skips the header
        only), and it keeps the reward finite and sensible: a mean over no tokens would be NaN,
        and a score of 0 would give a dialogue whose only message is empty a loss term of
        λ2 · 10⁶ (the reward floors L_max at 1e-6).
        """
        context_ids, cont_ids = turn_ids(self.tokenizer, self.turn_end, chats, continuations)
        seqs = [p + c for p, c in zip(context_ids, cont_ids, strict=True)]
        # Batches keep the callers' order: sorting rows by length would pad less, but it moves each
        # reward by float noise (≤ 1e-7), which reorders exact ties in the SFT and pair rankings.
        results: list[float] = []
        for start in range(0, len(seqs), self.batch_size):
            batch_conts = cont_ids[start : start + self.batch_size]
            ids, mask = self._left_pad(seqs[start : start + self.batch_size])
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            # left padding puts every continuation at the end: only the last `keep` positions count
            keep = max(map(len, batch_conts)) + 1
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
            ).logits.float()
            targets = ids[:, ids.shape[1] - keep + 1 :, None]
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, targets)[..., 0]
            for row, cont in enumerate(batch_conts):
                results.append(float(logprobs[row, keep - 1 - len(cont) :].mean()))
        return results


def _shared_prefix_lengths(ids: list[list[int]], keys: list[int]) -> list[int]:
    """Per row, how many leading tokens to compute once as a prefix (always fewer than the row has).

    A row's prefix is the longest one it shares with another row of the same key; a row that
    shares nothing takes all but its last token as its own prefix, which costs nothing extra.
    Neighbours in sorted order have the longest common prefixes, so one pass finds them.
    """
    order = sorted(range(len(ids)), key=lambda i: (keys[i], ids[i]))
    shared = [0] * len(ids)
    for a, b in zip(order[:-1], order[1:], strict=True):
        if keys[a] == keys[b]:
            n = len(os.path.commonprefix([ids[a], ids[b]]))
            shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
    return [min(n or len(row), len(row) - 1) for n, row in zip(shared, ids, strict=True)]


def open_backend(path: str | Path, settings: BackendParams, *, lora: bool = False) -> HFBackend:
    """The factory's entry: the model at ``path`` (LoRA states come per batch row, so ``lora`` is moot)."""
    return HFBackend.from_path(str(path), settings.batch_size)


@contextmanager
def serve(settings: BackendParams, engine, model, tokenizer, states: Sequence[LoRAState]):
    """Yield ``model`` itself as a backend, ``states`` stacked per row (``AdapterStack``); no engine."""
    from dits.backends.stack import AdapterStack

    yield HFBackend(model, tokenizer, settings.batch_size, stack=AdapterStack(model, states))


def in_memory(model, tokenizer, settings: BackendParams) -> HFBackend:
    """A backend over a model held in memory (a model being trained, a perturbed one)."""
    return HFBackend(model, tokenizer, settings.batch_size)
