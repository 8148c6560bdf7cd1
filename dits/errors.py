"""The one error family users see: the CLI prints it as a single line and exits non-zero."""

from __future__ import annotations


class DitsError(Exception):
    """A user-facing failure: bad params, a malformed table, a missing model directory.

    The message names the file, the row or key, the field and what was expected, so that
    it reads on its own as one line. Bugs raise anything else and keep their traceback.
    """
