"""TOA's single-response prompts and the embedded policies it orchestrates (papers/toa.md)."""
