"""Assistant tokens from rendered prefixes: the same mask under any chat template, or an error."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_chat_model
from transformers import AutoTokenizer
from trl.chat_template_utils import (
    llama3_training_chat_template,
    qwen2_5_chat_template,
)

from dits.backends.render import assistant_tokens
from dits.config import InfluenceParams
from dits.embedded.tokenizer import train_tokenizer
from dits.errors import DitsError
from dits.influence.estimators import sft_loss

CHAT = [
    {"role": "system", "content": "You are Alice. Your fact: founder 2 eli"},
    {"role": "user", "content": "who is the founder ?"},
    {"role": "assistant", "content": "the founder is <A> eli </A>"},
    {"role": "user", "content": "thanks"},
    {"role": "assistant", "content": "done"},
]
TEXTS = ["you are alice your fact founder 2 eli who is the founder thanks the founder is done"] * 20


@pytest.fixture(scope="module")
def llama3(tmp_path_factory):
    out = tmp_path_factory.mktemp("llama3")
    tiny_chat_model(out, TEXTS)
    return out


def _marked(tokenizer, template=None):
    encoded = tokenizer.apply_chat_template(
        CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, chat_template=template
    )
    return encoded["input_ids"], encoded["assistant_masks"]


def test_embedded_template_gives_the_mask_of_its_generation_markers():
    tokenizer = train_tokenizer(TEXTS, 300)
    assert assistant_tokens(tokenizer, CHAT) == _marked(tokenizer)


def test_llama3_template_without_markers_gives_the_mask_of_trls_marked_llama3_template(llama3):
    tokenizer = AutoTokenizer.from_pretrained(llama3)
    ids, mask = assistant_tokens(tokenizer, CHAT)
    assert (ids, mask) == _marked(tokenizer, llama3_training_chat_template)
    own = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert own == "the founder is <A> eli </A><|eot_id|>done<|eot_id|>"


def test_chatml_template_marks_each_message_and_its_end_token_not_the_newline_after(llama3):
    tokenizer = AutoTokenizer.from_pretrained(llama3)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = qwen2_5_chat_template
    ids, mask = assistant_tokens(tokenizer, CHAT)
    own = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert own == "the founder is <A> eli </A><|im_end|>done<|im_end|>"


def test_template_that_drops_assistant_messages_is_an_error_not_an_empty_mask(llama3):
    tokenizer = AutoTokenizer.from_pretrained(llama3)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    with pytest.raises(DitsError, match=r"^chat template: an assistant message renders to no token"):
        assistant_tokens(tokenizer, CHAT)


def test_template_whose_renders_are_not_prefixes_is_an_error(llama3):
    tokenizer = AutoTokenizer.from_pretrained(llama3)
    tokenizer.chat_template = "{% for m in messages | reverse %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(DitsError, match=r"does not give prefixes of the whole \(assistant message 2\)"):
        assistant_tokens(tokenizer, CHAT)


def test_grad_similaritys_sft_loss_has_a_gradient_under_the_llama3_template(llama3):
    """The template without markers once gave an empty mask: loss 0 and gradient norm 0."""
    from transformers import AutoModelForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(llama3)
    tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(llama3)
    loss = sft_loss(model, tokenizer, [CHAT], InfluenceParams(), backward=True)
    norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))
    assert loss > 0 and norm > 0
