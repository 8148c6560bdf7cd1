from __future__ import annotations

from types import SimpleNamespace

from dits.backends.limits import length_limit


def test_length_limit_is_the_least_of_the_param_the_tokenizer_and_the_model_positions():
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=512))
    no_limit = SimpleNamespace(model_max_length=10**30)  # Llama-3's tokenizer carries no real limit
    assert length_limit(256, model, no_limit) == 256
    assert length_limit(2048, model, no_limit) == 512
    assert length_limit(256, model, SimpleNamespace(model_max_length=128)) == 128
