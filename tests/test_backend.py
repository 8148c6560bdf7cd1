"""The HF backend: a row decodes the same in a batch as alone, shared prefixes included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_llama
from transformers import AutoTokenizer

from dits.backends.base import Sampling
from dits.backends.hf import HFBackend, _shared_prefix_lengths
from dits.backends.load import load_model
from dits.backends.render import end_ids
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
    return float(torch.log_softmax(logits, dim=-1)[backend.tokenizer.convert_tokens_to_ids("<|end|>")])


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


def _cache_model(cache: Path, repo_id: str, with_template: bool = True) -> None:
    """Lay a tiny model out as the Hugging Face hub cache does: refs/main -> snapshots/<commit>/."""
    tokenizer = AutoTokenizer.from_pretrained("models/base")
    if not with_template:
        tokenizer.chat_template = None
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = folder / "snapshots" / ("a" * 40)
    tiny_llama(tokenizer).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("a" * 40)


def _load_in_child(cache: Path, repo_id: str) -> subprocess.CompletedProcess:
    """Load ``repo_id`` in a fresh process whose hub cache is ``cache`` (the cache path is read at import)."""
    code = f"from dits.backends.hf import load_model; load_model({repo_id!r})"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_a_hub_id_loads_from_the_local_cache(tmp_path: Path) -> None:
    _cache_model(tmp_path, "some-org/tiny-chat")
    assert _load_in_child(tmp_path, "some-org/tiny-chat").returncode == 0


def test_a_hub_id_that_is_not_cached_is_one_line_saying_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DitsError) as err:
        load_model("some-org/some-model-that-is-not-here")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("some-org/some-model-that-is-not-here: not a local directory and not in")
    assert "hf download some-org/some-model-that-is-not-here" in message


def test_a_model_without_a_chat_template_is_refused(tmp_path: Path) -> None:
    _cache_model(tmp_path, "some-org/no-template", with_template=False)
    out = _load_in_child(tmp_path, "some-org/no-template")
    assert out.returncode != 0
    assert "some-org/no-template: the tokenizer has no chat template; dits needs a chat model" in out.stderr


def test_generation_stops_at_every_end_token_the_generation_config_lists(backend: HFBackend) -> None:
    model = tiny_llama(backend.tokenizer)
    model.generation_config.eos_token_id = [7, 9]
    assert end_ids(model.generation_config.eos_token_id, backend.tokenizer) == {
        7,
        9,
        backend.tokenizer.eos_token_id,
    }
    assert HFBackend(model, backend.tokenizer, 2).end_ids == {7, 9, backend.tokenizer.eos_token_id}
