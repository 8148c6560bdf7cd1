"""Tasks: where questions come from and how answers are scored (``base.Task``).

``catalog`` names them, ``registry.get_task`` builds them, ``synthetic`` is the embedded default,
``real`` the paper's datasets read by ``loaders``, ``prepare`` writes the tasks table.
"""
