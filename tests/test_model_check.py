"""prepare refuses a model that cannot load, in one line, before any stage trains."""

from __future__ import annotations

import dataclasses

import pytest
from tiny import tiny_chat_model

from dits.backends.render import check_model
from dits.config import Params
from dits.errors import DitsError
from dits.paths import named_models


def test_empty_directory_is_refused(tmp_path):
    with pytest.raises(DitsError, match=r"the model directory is empty$"):
        check_model(tmp_path)


def test_directory_without_a_config_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(DitsError, match=r"no config.json; not a transformers model directory$"):
        check_model(tmp_path)


def test_hub_id_missing_from_the_cache_is_refused_without_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(DitsError, match=r"^acme/no-such-model: not a local directory and not in the local"):
        check_model("acme/no-such-model")


def test_tokenizer_without_a_chat_template_is_refused(tmp_path):
    tiny_chat_model(tmp_path, ["hello world"] * 5)
    config = tmp_path / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"chat_template"', '"unused_template"'))
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(DitsError, match=r"the tokenizer has no chat template; dits needs a chat model$"):
        check_model(tmp_path)


def test_a_loadable_model_passes(tmp_path):
    tiny_chat_model(tmp_path, ["hello world"] * 5)
    check_model(tmp_path)


def test_named_models_are_what_no_stage_builds():
    params = Params()
    assert named_models(params) == []
    mine = dataclasses.replace(params, model=dataclasses.replace(params.model, base="/ckpt/llama"))
    assert named_models(mine) == ["/ckpt/llama"]
