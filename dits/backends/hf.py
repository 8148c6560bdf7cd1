"""Batched inference with transformers: left padding, KV cache, per-row seeds.

``generate`` runs its own decoding loop instead of ``model.generate`` because every row must
sample with its own seed (DESIGN §2): ``generate`` draws all rows from one global RNG, so a row's
text would depend on what else is in the batch. The loop is also leaner on CPU (STACK.md §9).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dits.backends.base import Chat, Generation, Sampling
from dits.errors import DitsError

if TYPE_CHECKING:
    from dits.influence.stack import AdapterStack


def default_device() -> str:
    """The GPU when there is one: rollouts, perturbed validation and training all follow the model."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str | None = None):
    """Return (model, tokenizer) from a local directory or hub name, in eval mode, on ``device``."""
    local = Path(path)
    if not local.exists() and (str(path).startswith((".", "/")) or os.sep in str(path)):
        raise DitsError(f"{path}: model directory not found (run the bootstrap stage or set model.base)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device or default_device())
    except OSError as exc:
        raise DitsError(f"{path}: cannot load a model: {str(exc).splitlines()[0]}") from exc
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer


class HFBackend:
    """The Backend protocol over a transformers causal LM (DESIGN §2)."""

    def __init__(self, model, tokenizer, batch_size: int = 64, stack: AdapterStack | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stack = stack  # serves per-row ``adapters`` in ``generate``
        self.end_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
        self.pad_id = tokenizer.pad_token_id

    @classmethod
    def from_path(cls, path: str | Path, batch_size: int = 64, device: str | None = None) -> HFBackend:
        model, tokenizer = load_model(path, device=device)
        return cls(model, tokenizer, batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def _render(self, chats: Sequence[Chat]) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats
        ]

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
        prompts = self._render(chats)
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
        self, prompts: list[str], sampling: Sampling, seeds: Sequence[int], stack_rows: torch.Tensor | None
    ) -> list[Generation]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {key: value.to(self.model.device) for key, value in enc.items()}
        attention = enc["attention_mask"]
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        generators = None
        if sampling.temperature > 0:
            generators = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
        if stack_rows is not None:
            self.stack.set_rows(stack_rows)
        out = self.model(
            input_ids=enc["input_ids"],
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # the prompt's other positions predict nothing we use
        )
        past = out.past_key_values
        logits = out.logits[:, -1, :]
        rows = len(prompts)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        finished = [False] * rows
        live = list(range(rows))  # original row of each row still in the batch
        for _ in range(sampling.max_new_tokens):
            row_generators = None if generators is None else [generators[i] for i in live]
            picked = self._pick(logits, sampling, row_generators).tolist()
            keep = []
            for j, (i, tok) in enumerate(zip(live, picked, strict=True)):
                if tok == self.end_id:
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

    @staticmethod
    def _pick(
        logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator] | None
    ) -> torch.Tensor:
        """Greedy argmax, or top-p sampling with each row's own generator."""
        if generators is None:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float().cpu() / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < sampling.top_p
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
        picked = [torch.multinomial(probs[i], 1, generator=g)[0] for i, g in enumerate(generators)]
        return torch.stack(picked).to(logits.device)

    @torch.inference_mode()
    def loglik(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Mean per-token log-prob of each continuation as the next assistant turn.

        The continuation is rendered by the chat template as one more assistant turn; its tokens
        include the end-of-message token, while the turn's header (``<|assistant|>``) is context,
        not scored (the paper skips its 5 Llama-3 header tokens). An empty chat scores a message
        alone, as the reward's loss term does.
        """
        results: list[float] = []
        for start in range(0, len(chats), self.batch_size):
            batch_chats = chats[start : start + self.batch_size]
            batch_cont = continuations[start : start + self.batch_size]
            prompts, conts = [], []
            for chat, cont in zip(batch_chats, batch_cont, strict=True):
                full = self.tokenizer.apply_chat_template(
                    [*chat, {"role": "assistant", "content": cont}], tokenize=False
                )
                cut = full.rfind(cont)
                prompts.append(full[:cut])
                conts.append(full[cut:])
            prompt_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
            cont_ids = self.tokenizer(conts, add_special_tokens=False)["input_ids"]
            seqs = [p + c for p, c in zip(prompt_ids, cont_ids, strict=True)]
            width = max(map(len, seqs))
            ids = torch.full((len(seqs), width), self.pad_id, device=self.model.device)
            mask = torch.zeros((len(seqs), width), dtype=torch.long, device=self.model.device)
            for i, s in enumerate(seqs):
                ids[i, width - len(s) :] = torch.tensor(s, device=self.model.device)
                mask[i, width - len(s) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            # left padding puts every continuation at the end: only the last `keep` positions count
            keep = max(map(len, cont_ids)) + 1
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
            ).logits.float()
            targets = ids[:, width - keep + 1 :, None]
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, targets)[..., 0]
            for i, c in enumerate(cont_ids):
                results.append(float(logprobs[i, keep - 1 - len(c) :].mean()))
        return results
