"""What every backend shares: where a model's files are, its tokenizer, and how chats become tokens.

Both backends render a chat with the tokenizer's own chat template and tokenize the text without
adding special tokens, so the same chat is the same token ids under transformers and under vLLM:
greedy decoding then writes the same messages (``tests/test_vllm.py``), and a log-likelihood is
taken over the same continuation tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dits.backends.base import Chat
from dits.errors import DitsError


@contextmanager
def model_files(path: str | Path) -> Iterator[None]:
    """Turn a failed load of ``path`` (a directory or a hub id) into one line saying what to do.

    A hub id is read from the local Hugging Face cache only (``local_files_only``): a stage never
    starts a multi-GB download.
    """
    local = Path(path)
    if not local.exists() and (str(path).startswith((".", "/")) or str(path).count("/") > 1):
        raise DitsError(f"{path}: model directory not found (run the bootstrap stage or set model.base)")
    try:
        yield
    except OSError as exc:
        if local.exists():
            raise DitsError(f"{path}: cannot load a model: {str(exc).splitlines()[0]}") from None
        raise DitsError(
            f"{path}: not a local directory and not in the local Hugging Face cache; download it first "
            f"(`hf download {path}`, or set HF_HOME to a cache that has it) or set model.base to a directory"
        ) from None


def local_dir(path: str | Path) -> str:
    """Return the directory holding the model's files: ``path`` itself, or a hub id's cached snapshot."""
    if Path(path).exists():
        return str(path)
    from huggingface_hub import snapshot_download

    with model_files(path):
        return snapshot_download(str(path), local_files_only=True)


def load_tokenizer(path: str | Path):
    """Return the tokenizer of ``path``, left-padding, with a pad token; refuse one without a chat template.

    The two agents' turns are rendered by the chat template, so a model without one cannot play.
    Llama-3 has no pad token; padded positions are masked, so the end of text serves.
    """
    from transformers import AutoTokenizer

    with model_files(path):
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if not tokenizer.chat_template:
        raise DitsError(f"{path}: the tokenizer has no chat template; dits needs a chat model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def end_ids(generation_eos: int | list[int] | None, tokenizer) -> frozenset[int]:
    """Return the token ids that end a message: the tokenizer's eos and the generation config's.

    Chat models end a turn with a token of their own (Llama-3's ``<|eot_id|>``), which their
    generation config lists beside the end of text; stopping at the eos alone would run on.
    """
    ids = {tokenizer.eos_token_id}
    ids |= set(generation_eos) if isinstance(generation_eos, list) else {generation_eos}
    return frozenset(i for i in ids if i is not None)


def turn_end(tokenizer) -> str:
    """Return the text the chat template writes after an assistant message (``<|end|>`` here)."""
    probe = "x"
    rendered = tokenizer.apply_chat_template([{"role": "assistant", "content": probe}], tokenize=False)
    return rendered[rendered.rfind(probe) + len(probe) :]


def prompt_ids(tokenizer, chats: Sequence[Chat]) -> list[list[int]]:
    """Return each chat rendered for the assistant's next turn, as token ids."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def turn_ids(
    tokenizer, end: str, chats: Sequence[Chat], continuations: Sequence[str]
) -> tuple[list[list[int]], list[list[int]]]:
    """Return (context ids, scored ids) of each continuation rendered as the chat's next assistant turn.

    The scored ids are the message's tokens and the end-of-message token; the turn's header
    (``<|assistant|>``) is context, not scored (the paper skips its 5 Llama-3 header tokens). An
    empty chat scores a message alone, as the reward's loss term does. The message is located as
    the text before the template's turn end ``end`` (``turn_end``), not by searching for it, so an
    empty one, or one that also occurs in the turn end, is cut where it is.
    """
    contexts, scored = [], []
    for chat, cont in zip(chats, continuations, strict=True):
        full = tokenizer.apply_chat_template([*chat, {"role": "assistant", "content": cont}], tokenize=False)
        if not full.endswith(cont + end):
            raise DitsError(
                f"chat template: an assistant turn does not end with the message {cont[:40]!r} "
                f"then {end!r}; loglik cannot find the message's tokens"
            )
        cut = len(full) - len(end) - len(cont)
        contexts.append(full[:cut])
        scored.append(full[cut:])
    return (
        tokenizer(contexts, add_special_tokens=False)["input_ids"],
        tokenizer(scored, add_special_tokens=False)["input_ids"],
    )


def assistant_tokens(tokenizer, chat: Chat) -> tuple[list[int], list[int]]:
    """Return the chat's token ids and a mask: 1 on the tokens of the assistant's own messages.

    Found from rendered prefixes, so it holds for any chat template, with or without
    ``{% generation %}`` markers (Llama-3's has none): assistant message i is the text between the
    chat before it rendered for the assistant's next turn and the chat through it, as TRL locates a
    completion after its prompt. Its tokens are the message and the special token that ends the
    turn; what a template writes after that (ChatML's newline) is not the assistant's, since a
    generation stops at the end token. Every place that needs an agent's own tokens (SFT rows,
    grad_similarity, replay) takes them here. A chat with an assistant message that yields no
    token, or a template whose renders are not prefixes of each other, is an error, not a zero.
    """
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    spans = []
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(chat[: i + 1], tokenize=False)
        if not (through.startswith(before) and text.startswith(through)):
            raise DitsError(
                "chat template: rendering the chat message by message does not give prefixes of the whole "
                f"(assistant message {i}); its assistant tokens cannot be located"
            )
        spans.append((len(before), len(through)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    mask = [0] * len(ids)
    for first, end in spans:
        inside = [t for t, (start, _) in enumerate(offsets) if first <= start < end]
        ends = [t for t in inside if ids[t] in special]
        inside = [t for t in inside if not ends or t <= ends[-1]]
        if not inside:
            raise DitsError(
                f"chat template: an assistant message renders to no token: {text[first:end][:40]!r}"
            )
        for t in inside:
            mask[t] = 1
    return ids, mask


def check_model(path: str | Path) -> None:
    """Refuse, in one line, a model that cannot be loaded, reading only its config and tokenizer.

    ``prepare`` runs this on every checkpoint the params name, so an empty or broken directory, a
    tokenizer without a chat template or a hub id missing from the local cache stops the run before
    any stage trains or plays, rather than as a traceback an hour in.
    """
    from transformers import AutoConfig

    local = Path(path)
    if local.is_dir() and not any(local.iterdir()):
        raise DitsError(f"{path}: the model directory is empty")
    if local.is_dir() and not (local / "config.json").exists():
        raise DitsError(f"{path}: no config.json; not a transformers model directory")
    with model_files(path):
        AutoConfig.from_pretrained(str(path), local_files_only=True)
    try:
        load_tokenizer(path)
    except (ValueError, TypeError) as exc:  # transformers' "Couldn't instantiate the backend tokenizer"
        raise DitsError(f"{path}: cannot load its tokenizer: {str(exc).splitlines()[0]}") from None
