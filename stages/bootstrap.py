"""bootstrap: build the embedded base model (tokenizer + tiny Llama) unless model.base names one."""

from __future__ import annotations

from dits.atomic import atomic_path, write_json
from dits.config import Params
from dits.progress import log
from dits.stage import METRICS, MODELS, clock, setup
from dits.train.bootstrap import bootstrap_model


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    with clock("bootstrap"), atomic_path(MODELS / "base") as out:
        out.mkdir()
        curve = []
        if params.model.base != "embedded":
            (out / "SKIPPED").write_text(f"model.base = {params.model.base}: bootstrap skipped\n")
            log(f"bootstrap: skipped, model.base = {params.model.base}")
        else:
            import torch

            setup(params)
            model, tokenizer, curve = bootstrap_model(params)
            # bf16 halves the file that git keeps (2.3 MB); stages load it back as fp32.
            model.to(torch.bfloat16).save_pretrained(out)
            tokenizer.save_pretrained(out)
        write_json(METRICS / "bootstrap.json", {"curve": curve})
