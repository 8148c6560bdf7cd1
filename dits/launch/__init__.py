"""Where a stage's units run (``units``: ``local`` or ``ray``), and the process they run in (``process``)."""
