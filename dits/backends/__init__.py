"""Inference backends: ``hf`` (transformers, CPU or GPU) and ``vllm`` (GPU only, lazy import)."""
