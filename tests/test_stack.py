from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny import tiny_llama
from transformers import AutoTokenizer

from dits.backends.base import Chat, Generation, Sampling
from dits.backends.hf import HFBackend
from dits.backends.stack import AdapterStack, load_lora_state, lora_state
from dits.dialogue import Dialogue, play
from dits.errors import DitsError
from dits.tasks.base import Example

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WORDS = ["a", "bob", "rome is", "x y z", "city", "what", "oslo", "where was", "lima", "the ceo"]


@pytest.fixture(scope="module")
def tiny():
    """A random 2-layer Llama with LoRA on every projection, and three random adapter states."""
    tokenizer = AutoTokenizer.from_pretrained("models/base")
    tokenizer.padding_side = "left"
    base = tiny_llama(tokenizer, eos_boost=3)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=PROJECTIONS, lora_dropout=0.0)
    model = get_peft_model(base, lora).eval()
    generator = torch.Generator().manual_seed(0)
    states = []
    for _ in range(3):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if (
                    "lora_" in name
                ):  # B too: its default init is zero, which would make every adapter the base
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        states.append(lora_state(model))
    return model, tokenizer, states


def encode(tokenizer, n: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(
        [f"<|user|>hello {w}<|end|><|assistant|>" for w in WORDS[:n]], return_tensors="pt", padding=True
    )
    enc["position_ids"] = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return dict(enc)


def logits_with(model, state, enc) -> torch.Tensor:
    """Logits of the PEFT model with ``state`` loaded, or with the adapter disabled for None."""
    with torch.no_grad():
        if state is None:
            with model.disable_adapter():
                return model(**enc).logits
        load_lora_state(model, state)
        return model(**enc).logits


def test_load_lora_state_restores_weights_bit_for_bit(tiny):
    model, _, states = tiny
    load_lora_state(model, states[1])
    saved = lora_state(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(0.1)
    assert not any(torch.equal(saved[n], p) for n, p in model.named_parameters() if n in saved)
    load_lora_state(model, saved)
    restored = dict(model.named_parameters())
    assert len(saved) == 2 * len(PROJECTIONS) * 2
    assert all(torch.equal(saved[name], restored[name]) for name in saved)
    assert all(torch.equal(states[1][name], restored[name]) for name in saved)


def test_stack_forward_gives_each_row_the_logits_of_its_adapter(tiny):
    model, tokenizer, states = tiny
    adapters = [0, 1, 2, -1, 2, -1, 1, 0]
    enc = encode(tokenizer, len(adapters))
    reference = {a: logits_with(model, None if a == -1 else states[a], enc) for a in set(adapters)}
    stack = AdapterStack(model, states)
    stack.set_rows(torch.tensor(adapters))
    with torch.no_grad(), stack.active():
        stacked = model(**enc).logits
    assert len(stack) == 3
    assert (reference[0] - reference[1]).abs().max() > 0.1  # the adapters really differ
    for b, a in enumerate(adapters):
        torch.testing.assert_close(stacked[b], reference[a][b], atol=1e-5, rtol=0)


def test_merged_adapter_gives_its_logits_and_restores_the_base_weights(tiny):
    model, tokenizer, states = tiny
    enc = encode(tokenizer, 4)
    reference = logits_with(model, states[2], enc)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    stack = AdapterStack(model, states)
    with torch.no_grad(), stack.active(), stack.merged(2):
        merged = model(**enc).logits
    torch.testing.assert_close(merged, reference, atol=1e-5, rtol=0)
    after = dict(model.named_parameters())
    assert len(before) == 2 * len(PROJECTIONS)
    assert all(after[n] is not None and torch.equal(before[n], after[n]) for n in before)
    with pytest.raises(DitsError, match="out of range"), stack.merged(3):
        pass


def test_generate_with_mixed_adapters_matches_each_adapter_alone(tiny):
    model, tokenizer, states = tiny
    chats = [[{"role": "user", "content": f"hello {w}"}] for w in WORDS]
    adapters = [0, 1, 2, None, 0, 1, 2, None, 1, 0]
    sampling = Sampling(max_new_tokens=12)
    seeds = [0] * len(chats)
    # batch_size 4: three batches, so each batch takes its own slice of the adapters
    mixed = HFBackend(model, tokenizer, batch_size=4, stack=AdapterStack(model, states))
    got = mixed.generate(chats, sampling, seeds, adapters=adapters)
    plain = HFBackend(model, tokenizer, batch_size=4)
    alone = {}
    for a in set(adapters):
        if a is None:
            with model.disable_adapter():
                alone[a] = plain.generate(chats, sampling, seeds)
        else:
            load_lora_state(model, states[a])
            alone[a] = plain.generate(chats, sampling, seeds)
    assert [g.text for g in got] == [alone[a][i].text for i, a in enumerate(adapters)]
    assert got == [alone[a][i] for i, a in enumerate(adapters)]
    assert len({g.tokens for g in got}) > 3 and {g.finish_reason for g in got} == {"stop", "length"}
    assert len({alone[a][0].text for a in alone}) > 1  # the adapters decode differently


def test_stack_hooks_are_removed_after_active_exits(tiny):
    model, tokenizer, states = tiny
    enc = encode(tokenizer, 4)
    expected = logits_with(model, states[2], enc)
    stack = AdapterStack(model, states)
    stack.set_rows(torch.tensor([0, 1, -1, 0]))
    with torch.no_grad(), stack.active():
        model(**enc)
    with torch.no_grad():
        after = model(**enc).logits
    assert torch.equal(after, expected)
    assert all(not module._forward_hooks for module in model.modules())


def test_stack_without_rows_inside_active_is_the_base_model(tiny):
    model, tokenizer, states = tiny
    enc = encode(tokenizer, 4)
    stack = AdapterStack(model, states)
    stack.set_rows(None)
    with torch.no_grad(), stack.active():
        got = model(**enc).logits
    torch.testing.assert_close(got, logits_with(model, None, enc), atol=0, rtol=0)


def test_stack_rejects_adapter_index_outside_the_stack(tiny):
    model, _, states = tiny
    stack = AdapterStack(model, states)
    with pytest.raises(DitsError, match="out of range"):
        stack.set_rows(torch.tensor([0, 3]))
    with pytest.raises(DitsError, match="out of range"):
        stack.set_rows(torch.tensor([-2]))


def test_generate_with_adapters_and_no_stack_raises(tiny):
    model, tokenizer, _ = tiny
    backend = HFBackend(model, tokenizer, batch_size=2)
    chats = [[{"role": "user", "content": "hello"}]] * 2
    with pytest.raises(DitsError, match="no AdapterStack"):
        backend.generate(chats, Sampling(max_new_tokens=2), [0, 0], adapters=[None, 1])
    assert len(backend.generate(chats, Sampling(max_new_tokens=2), [0, 0], adapters=[None, None])) == 2


def example(i: int) -> Example:
    return Example(f"e{i}", f"question number {i} ?", (f"alice facts {i}", f"bob facts {i}"), ("x",))


class RecordingBackend:
    """Answers every row with a message; question 1's first message hits the token limit."""

    def __init__(self):
        self.adapters: list[list[int | None] | None] = []

    def generate(
        self,
        chats: Sequence[Chat],
        sampling: Sampling,
        seeds: Sequence[int],
        adapters: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        self.adapters.append(None if adapters is None else list(adapters))
        return [Generation("hi", 3, "length" if "number 1 " in c[0]["content"] else "stop") for c in chats]


def test_play_passes_each_dialogue_adapter_to_generate():
    backend = RecordingBackend()
    dialogues = [Dialogue(example(i), "exchange", 0, adapter=a) for i, a in enumerate([0, None, 2])]
    play(backend, dialogues, Sampling(), max_messages=2)
    assert backend.adapters == [[0, None, 2], [0, 2]]


def test_play_without_adapters_calls_generate_without_them():
    class NoAdapterBackend:
        def __init__(self):
            self.calls = 0

        def generate(self, chats, sampling, seeds):
            self.calls += 1
            return [Generation("hi", 3, "stop") for _ in chats]

    backend = NoAdapterBackend()
    play(backend, [Dialogue(example(i), "exchange", 0) for i in range(2)], Sampling(), max_messages=2)
    assert backend.calls == 2
