"""Training: the bootstrap model, SFT and DPO, all through TRL."""
