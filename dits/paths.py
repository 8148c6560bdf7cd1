"""Where the pipeline's tables and models live, relative to the repository root.

The stages write these paths and the library reads them; one module holds them so that a stage
and the code it runs can never disagree about where a model is.
"""

from __future__ import annotations

from pathlib import Path

from dits.config import Params

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")
TOA = MODELS / "toa"


def base_model(params: Params) -> str:
    """The base checkpoint: the embedded model, or what ``model.base`` names."""
    return str(MODELS / "base") if params.model.base == "embedded" else params.model.base


def sft_model(k: int, task: str) -> Path:
    return MODELS / "sft" / f"iter={k}" / task


def dpo_model(k: int, task: str) -> Path:
    return MODELS / "dpo" / f"iter={k}" / task


def policy_model(params: Params, k: int, task: str) -> str:
    """The sampling policy of iteration k: the base model at k = 0, DPO(k-1) after.

    Optima (arXiv 2410.08115) and DITS (arXiv 2502.00955) iterate from the last DPO model.
    """
    return base_model(params) if k == 0 else str(dpo_model(k - 1, task))


def named_models(params: Params) -> list[str]:
    """The checkpoints the params name that no stage builds: ``model.base``, ``toa.models``, policies."""
    built = ("models/base", "models/dpo/", "models/sft/")
    policies = [it.policy for it in params.iterations if not it.policy.startswith(built)]
    base = [] if params.model.base == "embedded" else [params.model.base]
    return list(dict.fromkeys([*base, *params.toa.models, *policies]))


def toa_models(params: Params) -> list[str]:
    """TOA's K policies: ``toa.models``, or the embedded policies the toa_policies stage builds."""
    if params.toa.models:
        return list(params.toa.models)
    return [str(TOA / "policies" / f"policy={i}") for i in range(params.toa.policies.count)]


def toa_reward_model(task: str) -> Path:
    return TOA / "reward" / task


def toa_target(method: str, task: str) -> Path:
    """The target trained on ``method``'s data for ``task`` (``sft`` and ``dpo`` inside)."""
    return TOA / "target" / f"method={method}" / task
