"""The HF backend: a row decodes the same in a batch as alone, shared prefixes included."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_llama
from transformers import AutoTokenizer

from dits.backends.base import Sampling
from dits.backends.hf import HFBackend, _shared_prefix_lengths
from dits.errors import DitsError

SYSTEMS = ["You are Alice. Question: where was the ceo born ?", "You are Bob. Question: what is 3 + 4 ?"]


def tiny_backend(device: str = "cpu") -> HFBackend:
    tokenizer = AutoTokenizer.from_pretrained("models/base")
    tokenizer.padding_side = "left"
    model = tiny_llama(tokenizer, eos_boost=3).to(device)
    return HFBackend(model, tokenizer, batch_size=16)


@pytest.fixture(scope="module")
def backend() -> HFBackend:
    return tiny_backend()


def chats() -> list[list[dict]]:
    """Rows as a dialogue batch has them: repeated prompts, shared system prompts, one of a kind."""
    out = []
    for system in SYSTEMS:
        out += [[{"role": "system", "content": system}]] * 3
        for reply in ("Alice: rome", "Alice: I know the ceo , Bob ?", "Alice: <A> oslo </A>"):
            out.append([{"role": "system", "content": system}, {"role": "user", "content": reply}])
    out.append([{"role": "user", "content": "hello"}])
    return out


def test_shared_prefix_lengths() -> None:
    ids = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4], [9, 8], [1, 2, 7, 7, 7]]
    assert _shared_prefix_lengths(ids, [0] * 5) == [3, 3, 3, 1, 2]
    # rows of different adapters share nothing: each keeps all but its last token
    assert _shared_prefix_lengths([[1, 2, 3], [1, 2, 3]], [0, 1]) == [2, 2]


@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_batched_rows_with_shared_prefixes_decode_as_alone(backend: HFBackend, temperature: float) -> None:
    assert_batched_decodes_as_alone(backend, temperature)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_on_cuda_rows_decode_as_alone_with_their_noise_drawn_on_the_device(temperature: float) -> None:
    assert_batched_decodes_as_alone(tiny_backend("cuda"), temperature)


def assert_batched_decodes_as_alone(backend: HFBackend, temperature: float) -> None:
    rows = chats()
    sampling = Sampling(temperature=temperature, max_new_tokens=10)
    seeds = list(range(len(rows)))
    batched = backend.generate(rows, sampling, seeds)
    alone = [backend.generate([chat], sampling, [seed])[0] for chat, seed in zip(rows, seeds, strict=True)]
    assert batched == alone
    if temperature > 0:  # repeated prompts with their own seeds sample their own texts
        assert len({batched[0].text, batched[1].text, batched[2].text}) == 3
    else:  # rows leave the batch at different steps
        assert len({g.tokens for g in batched}) > 2


def test_loglik_batched_matches_alone(backend: HFBackend) -> None:
    rows = chats()
    messages = [f"Alice: {'word ' * (i % 5)}<A> rome </A>" for i in range(len(rows))]
    batched = backend.loglik(rows, messages)
    alone = [backend.loglik([c], [m])[0] for c, m in zip(rows, messages, strict=True)]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(batched)) > 1


def end_logprob(backend: HFBackend, prompt: str) -> float:
    """log p(<|end|> | prompt) straight from the model: what an empty message must score."""
    ids = backend.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return float(torch.log_softmax(logits, dim=-1)[backend.end_id])


def test_loglik_of_an_empty_message_is_the_log_prob_of_ending_the_turn_at_once(backend: HFBackend) -> None:
    chat = [{"role": "system", "content": SYSTEMS[0]}]
    empty_alone, empty_after_chat, word = backend.loglik([[], chat, []], ["", "", "rome"])
    assert backend.turn_end == "<|end|>"
    assert empty_alone == pytest.approx(end_logprob(backend, "<|assistant|>"), abs=1e-6)
    assert empty_after_chat == pytest.approx(
        end_logprob(backend, f"<|system|>{SYSTEMS[0]}<|end|><|assistant|>"), abs=1e-6
    )
    assert empty_alone != empty_after_chat and word < 0  # finite, and the chat is its context


def test_loglik_scores_a_message_where_the_template_puts_it_even_if_the_turn_end_contains_it(
    backend: HFBackend,
) -> None:
    # "|>" also ends "<|end|>": searching the rendered text for it finds the turn end, not the message
    (suffix,) = backend.loglik([[]], ["|>"])
    ids = backend.tokenizer("<|assistant|>|><|end|>", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    assert suffix == pytest.approx(float(logprobs.mean()), abs=1e-6)


def test_loglik_of_a_template_that_rewrites_the_message_is_an_error() -> None:
    tokenizer = AutoTokenizer.from_pretrained("models/base")
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "m['content'] + '<|end|>'", "m['content'] | trim + '<|end|>'"
    )
    backend = HFBackend(tiny_llama(tokenizer), tokenizer, batch_size=2)
    assert backend.loglik([[]], ["rome"])[0] < 0
    with pytest.raises(DitsError, match="does not end with the message ' rome'"):
        backend.loglik([[]], [" rome"])


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_pick_draws_what_multinomial_draws(top_p: float) -> None:
    torch.manual_seed(0)
    logits = torch.randn(32, 500) * 3
    sampling = Sampling(temperature=0.7, top_p=top_p)
    picked = HFBackend._pick(logits, sampling, [torch.Generator().manual_seed(s) for s in range(32)])
    probs = torch.softmax(logits / 0.7, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        kept = sorted_probs.cumsum(-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * kept)
    expected = [torch.multinomial(probs[s], 1, generator=torch.Generator().manual_seed(s)) for s in range(32)]
    assert picked.tolist() == torch.cat(expected).tolist()
    assert len(set(picked.tolist())) > 10
