"""The DITS paper's eight datasets, read from a local directory: ``load``, ``splits``, ``Record``.

Importing the package registers every loader; each module says which files it reads.
"""

from dits.tasks.loaders import arc, cbt, competition_math, gsm8k, hotpotqa, mmlu, triviaqa, twowiki  # noqa: F401
from dits.tasks.loaders.base import Record, known_datasets, load, splits

__all__ = ["Record", "known_datasets", "load", "splits"]
