"""bootstrap: build the embedded base model (tokenizer + tiny Llama) unless model.base names one."""

from __future__ import annotations

import json
import shutil

import torch

from dits.config import Params
from dits.progress import log
from dits.stage import METRICS, MODELS, clock, setup
from dits.train.bootstrap import bootstrap_model


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    out = MODELS / "base"
    with clock("bootstrap"):
        tmp = MODELS / "base.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if params.model.base != "embedded":
            (tmp / "SKIPPED").write_text(f"model.base = {params.model.base}: bootstrap skipped\n")
            log(f"bootstrap: skipped, model.base = {params.model.base}")
            curve = []
        else:
            setup(params)
            model, tokenizer, curve = bootstrap_model(params)
            # bf16 halves the file that git keeps (2.3 MB); stages load it back as fp32.
            model.to(torch.bfloat16).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        METRICS.mkdir(exist_ok=True)
        (METRICS / "bootstrap.json").write_text(json.dumps({"curve": curve}, indent=1) + "\n")
