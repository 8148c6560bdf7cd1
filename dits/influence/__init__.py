"""Influence estimation: perturbed LoRA adapters validated in one batch (DITS, arXiv 2502.00955)."""
