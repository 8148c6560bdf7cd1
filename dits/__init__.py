"""dits: influence-oriented tree search for training two-agent LLM systems on their own data."""

__version__ = "0.1.0"
