"""The pipeline's stages: one module each, declared once (``STAGE``), run by ``dits run NAME``.

``NAMES`` is the order of ``dvc.yaml``, which ``dits stages`` generates from the declarations.
"""

NAMES = (
    "prepare",
    "bootstrap",
    "bootstrap_score",
    "sample",
    "sft",
    "search",
    "influence",
    "select",
    "dpo",
    "evaluate",
    "report",
    "toa_policies",
    "toa_policy_scores",
    "toa_reward",
    "toa_search",
    "toa_train",
    "toa_evaluate",
    "toa_report",
)
