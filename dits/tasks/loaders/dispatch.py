"""Every dataset loader, registered, and read by name: ``load``, ``splits``, ``known_datasets``."""

from dits.tasks.loaders import arc, cbt, competition_math, gsm8k, hotpotqa, mmlu, triviaqa, twowiki  # noqa: F401
from dits.tasks.loaders.base import Record, known_datasets, load, splits

__all__ = ["Record", "known_datasets", "load", "splits"]
