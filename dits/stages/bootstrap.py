"""bootstrap: the embedded base model (a BPE tokenizer and a tiny Llama) trained on scripted dialogues.

Kept in git: a fresh clone skips this stage while what trains the model is unchanged. Its score
is ``bootstrap_score``'s. With ``model.base`` naming a checkpoint nothing is built and
``models/base`` is left as committed.
"""

from __future__ import annotations

from dits.embedded.bootstrap import bootstrap_model
from dits.paths import MODELS
from dits.progress import log
from dits.stages.stage import Run, Stage
from dits.storage.atomic import atomic_path

STAGE = Stage(
    "bootstrap",
    params=("task.names", "model", "bootstrap", "backend.threads"),
    cached_in_git=("models/base",),
    torch=False,  # model.base names a checkpoint: nothing to train, no torch to import
)


def work(run: Run) -> None:
    p = run.params
    if p.model.base != "embedded":  # the committed embedded model stays as it is (persist)
        log(f"bootstrap: skipped, model.base = {p.model.base}; models/base left untouched")
        (MODELS / "base").mkdir(parents=True, exist_ok=True)
        return
    import torch

    from dits.launch.process import setup

    setup(p)
    model, tokenizer = bootstrap_model(p)
    with atomic_path(MODELS / "base") as out:
        # bf16 halves the file that git keeps (2.3 MB); stages load it back as fp32.
        model.to(torch.bfloat16).save_pretrained(out)
        tokenizer.save_pretrained(out)
