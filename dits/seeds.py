"""Per-row seeds derived from content, never from batch position or Python's ``hash``.

A row keeps its seed whether it runs alone, in a batch, in another shard or after a resume,
which is what makes sharded and resumed runs equal to a single run.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """Return a 63-bit seed from blake2b over the parts' string forms."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def content_id(*parts: object, size: int = 8) -> str:
    """Return a stable hex key for a datum defined by ``parts`` (table keys)."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=size).hexdigest()
