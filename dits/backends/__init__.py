"""Inference backends behind one protocol (``base.Backend``): ``hf`` (transformers) and ``vllm``.

Stages open a backend through ``factory``, which imports the module ``backend.name`` names, so a
run on one backend never executes (nor depends on) the other.
"""
