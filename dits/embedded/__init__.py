"""The embedded default model: its tokenizer, its scripted dialogues and the bootstrap that trains it."""
