"""TOA's single-response prompts and the embedded policies it orchestrates (arXiv 2412.17061)."""
