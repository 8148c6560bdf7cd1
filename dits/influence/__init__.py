"""Influence estimation: perturbed LoRA adapters validated in one batch (papers/dits.md §6)."""
