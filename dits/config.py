"""params.yaml → frozen dataclasses, validated on load.

Each section of params.yaml is one dataclass below. Every field documents its default and, where
it differs, the paper's value. Loading fails on the first fault with one line naming the key, the
value and what is allowed; unknown keys are errors, so a typo never falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dits.errors import DitsError


def param(
    default: Any,
    help: str,
    *,
    paper: str | None = None,
    min: float | None = None,
    max: float | None = None,
    choices: tuple | None = None,
) -> Any:
    """A documented, range-checked field (TRL style: the help text lives where the field does)."""
    meta = {"help": help, "paper": paper, "min": min, "max": max, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Iteration:
    k: int = param(0, "iteration index", min=0)
    policy: str = param(
        "", "the sampling policy: models/base at k = 0, then models/dpo/iter=k-1 (derived if omitted)"
    )


@dataclass(frozen=True)
class SliceParams:
    """Which split and rows feed a dataset task's pools; an unset key keeps the paper's slice."""

    train_split: str = param("", "split the sft and search pools walk through ('' = the paper's)")
    val_split: str = param("", "split of the val pool ('' = the paper's)")
    val_start: int = param(-1, "records of val_split before the val pool (-1 = the paper's)", min=-1)
    test_split: str = param("", "split of the test pool ('' = the paper's)")
    test_start: int = param(-1, "records of test_split before the test pool (-1 = the paper's: 0)", min=-1)


@dataclass(frozen=True)
class TaskParams:
    names: list[str] = param(["synthetic-exchange", "synthetic-debate"], "tasks to run, one model each")
    sft_examples: int = param(320, "questions per iteration in the SFT sampling pool", paper="10000", min=1)
    search_examples: int = param(32, "questions per iteration in the search pool", paper="12000", min=1)
    val_examples: int = param(100, "fixed validation questions", paper="20", min=1)
    test_examples: int = param(200, "fixed test questions (≥ 200 gives a standard error ≈ 0.03)", min=1)
    paths: dict[str, str] = param(
        {}, "dataset directory of each dataset task in names (e.g. hotpotqa: /data/hotpotqa)"
    )
    slices: dict[str, SliceParams] = param(
        {},
        "per dataset task, the splits and first rows of its pools (hotpotqa: {val_start: 0}); unset: paper's",
    )
    hotpotqa_paragraphs: str = param(
        "first_sentence",
        "HotpotQA context: each paragraph's first sentence (the authors' rule) or the whole paragraph",
        choices=("first_sentence", "whole"),
    )


@dataclass(frozen=True)
class ModelParams:
    base: str = param(
        "embedded",
        "'embedded' (bootstrap builds models/base) or a local/hub checkpoint",
        paper="meta-llama/Meta-Llama-3-8B-Instruct",
    )


@dataclass(frozen=True)
class BootstrapParams:
    seed: int = param(
        1, "seed of the scripts and the initial weights (the pipeline's own seed is separate)", min=0
    )
    hidden_size: int = param(128, "width of the embedded Llama", min=16)
    layers: int = param(4, "transformer layers", min=1)
    heads: int = param(4, "attention heads", min=1)
    intermediate_size: int = param(512, "MLP width", min=16)
    vocab_size: int = param(1024, "BPE vocabulary size", min=300)
    scripts_per_task: int = param(
        24000,
        "scripted dialogues per task, one row per agent each (the trainer stops at steps x batch rows)",
        min=1,
    )
    steps: int = param(1200, "optimizer steps", min=1)
    batch_size: int = param(64, "rows per step (one agent's view of a dialogue each)", min=1)
    learning_rate: float = param(3e-3, "peak learning rate (cosine schedule)", min=0.0)
    wrong_fact: float = param(0.15, "P(an agent states a wrong fact or makes a slip)", min=0.0, max=1.0)
    withhold: float = param(0.12, "P(Alice withholds her fact or Bob asks again)", min=0.0, max=1.0)
    verbose: float = param(0.15, "P(a message starts with filler words)", min=0.0, max=1.0)
    missing_tag: float = param(0.09, "P(an answer is given without <A> tags)", min=0.0, max=1.0)
    habit: float = param(
        0.6,
        "P(the systematic error: ceo questions answered with the founder, slips on "
        "subtraction); above 0.5 the base model makes it when decoding greedily",
        min=0.0,
        max=1.0,
    )
    catch: float = param(0.3, "P(Bob catches a slip in a debate)", min=0.0, max=1.0)
    eval_examples: int = param(100, "validation questions bootstrap_score plays greedily per task", min=1)


@dataclass(frozen=True)
class FamilyReward:
    lambda_token: float = param(
        -0.6, "λ1, weight of tokens/T_max (negative)", paper="-0.6 IE, -0.4 math, -0.5 ARC", max=0.0
    )
    lambda_loss: float = param(1.0, "λ2, weight of 1/L_max", paper="1.0 IE/MMLU, 0.9 math, 0.6 ARC", min=0.0)


@dataclass(frozen=True)
class RewardParams:
    exchange: FamilyReward = param(FamilyReward(), "λ for information-exchange tasks")
    debate: FamilyReward = param(FamilyReward(-0.4, 0.9), "λ for debate tasks (the paper's math values)")
    token_floor: int = param(8, "token term := -1 at or below this many tokens", paper="40 (Llama-3)", min=0)
    token_cap: int = param(400, "loss term := -1 above this many tokens", paper="2000 (5000 MATH)", min=1)


@dataclass(frozen=True)
class SampleParams:
    samples_per_example: int = param(8, "dialogues sampled per question", paper="10", min=1)
    temperature: float = param(0.7, "sampling temperature", paper="0.3 at iteration 0, 0.7 after", min=0.0)
    top_p: float = param(1.0, "nucleus sampling", min=0.0, max=1.0)
    max_new_tokens: int = param(48, "token limit of one message", paper="2000", min=1)
    max_messages: int = param(10, "messages before a dialogue is cut", paper="10", min=2)


@dataclass(frozen=True)
class SFTParams:
    keep_fraction: float = param(
        0.7, "keep the top fraction of questions by best reward", paper="0.7", min=0.0, max=1.0
    )
    min_reward: float = param(0.5, "ε_sft: drop best dialogues below this reward", paper="0.5 IE, 0.6 math")
    learning_rate: float = param(5e-4, "peak learning rate", paper="2e-5 IE, 1e-6 math", min=0.0)
    epochs: float = param(3.0, "passes over the kept dialogues", paper="1-4", min=0.0)
    batch_size: int = param(16, "rows per step", paper="32 (8 GPUs x 4)", min=1)
    max_length: int = param(256, "tokens per row", paper="2048", min=16)


@dataclass(frozen=True)
class SearchParams:
    selections: int = param(8, "selections per tree", paper="8", min=1)
    rollouts: int = param(3, "rollouts to the end of the dialogue per selection", paper="3", min=1)
    temperature: float = param(0.7, "rollout sampling temperature", paper="0.7", min=0.0)
    top_k: int = param(10, "candidates kept by Q before sampling", paper="10", min=1)
    select_distance: float = param(
        0.25,
        "drop candidates within this normalised edit distance of a selected node",
        paper="0.25",
        min=0.0,
        max=1.0,
    )
    merge_distance: float = param(
        0.1, "merge a new message into a sibling within this distance", paper="0.1", min=0.0, max=1.0
    )
    normaliser_dialogues: int = param(
        100, "dialogues sampled to set the token normaliser (80th percentile)", paper="100", min=1
    )
    policy: str = param(
        "softmax", "node selection: softmax(Q) (paper) or ucb (a named deviation)", choices=("softmax", "ucb")
    )
    ucb_c: float = param(1.0, "UCB exploration constant (policy: ucb only)", min=0.0)
    shards: int = param(4, "parts the search writes; a killed run resumes from finished parts", min=1)


@dataclass(frozen=True)
class PairParams:
    exchange_q_min: float = param(0.4, "keep a pair if Q(chosen) > this (exchange tasks)", paper="0.4")
    debate_q_min: float = param(0.45, "keep a pair if Q(chosen) > this (debate tasks)", paper="0.45")
    gap: float = param(0.2, "keep a pair if Q(chosen) - Q(rejected) > this", paper="0.2", min=0.0)
    keep_fraction: float = param(
        0.5, "per tree, keep the top fraction by Q(chosen), at least one pair", paper="0.5", min=0.0, max=1.0
    )


@dataclass(frozen=True)
class InfluenceParams:
    r: int = param(8, "rank of the LoRA (PEFT r)", paper="32", min=1)
    lora_alpha: float = param(16.0, "LoRA scale numerator (PEFT lora_alpha)", paper="32", min=0.0)
    lora_dropout: float = param(0.05, "LoRA dropout during the warm-up", paper="0.05", min=0.0, max=1.0)
    warmup_steps: int = param(50, "DPO steps of the warm-up LoRA θ*", paper="50", min=0)
    warmup_batch: int = param(8, "pairs per warm-up step", paper="8", min=1)
    warmup_lr: float = param(5e-5, "warm-up learning rate", paper="5e-5", min=0.0)
    beta: float = param(0.1, "DPO β of the warm-up and of the one step", paper="0.1", min=0.0)
    max_length: int = param(256, "tokens of prompt + message", paper="512", min=16)
    group_size: int = param(5, "pairs per group (1 = per pair); a group shares one score", paper="5", min=1)
    step_lr: float = param(
        1e-3,
        "lr of the one fresh-AdamW step per group (≈ its size: the first step is lr·sign(g))",
        paper="5e-5",
        min=0.0,
    )
    val_episodes: int = param(100, "V: validation questions per task", paper="20", min=1)
    decoding: str = param(
        "greedy",
        "greedy (the paper) or crn: sampling with per-episode seeds shared by θ* and every θ_g",
        choices=("greedy", "crn"),
    )
    crn_seeds: int = param(4, "S: sampled episodes per question under decoding: crn", min=1)
    crn_temperature: float = param(0.7, "sampling temperature under decoding: crn", min=0.0)
    replay: bool = param(
        True,
        "greedy only: take a θ_g episode from θ*'s dialogue when one forward pass shows it would "
        "repeat it token for token; decode only the others",
    )
    estimators: list[str] = param(
        ["finite_difference", "grad_similarity"], "estimators the stage computes (select.estimator reads one)"
    )
    shards: int = param(2, "parts the stage writes; a killed run resumes from finished parts", min=1)


@dataclass(frozen=True)
class SelectParams:
    by: str = param(
        "influence",
        "ranking: influence (minmax(I) + γ·Q), q (γ·Q alone), random, all",
        choices=("q", "random", "all", "influence"),
    )
    alpha: float = param(0.5, "α: fraction of pairs kept", paper="0.5", min=0.0, max=1.0)
    gamma: float = param(
        1.0, "γ: weight of Q(chosen) in H = minmax(I) + γ·Q", paper="1 (0 best for IE)", min=0.0
    )
    estimator: str = param("finite_difference", "influence estimator read by by: influence")


@dataclass(frozen=True)
class DPOParams:
    beta: float = param(0.1, "DPO β", paper="0.1 HotpotQA/MATH/MMLU, 0.5 2WMH/GSM8k, 0.7 CBT", min=0.0)
    learning_rate: float = param(5e-5, "learning rate (full fine-tune)", paper="5e-7", min=0.0)
    epochs: float = param(2.0, "passes over the selected pairs", paper="1", min=0.0)
    batch_size: int = param(8, "pairs per step", paper="64", min=1)
    max_length: int = param(256, "tokens of prompt + response", paper="512 IE, 4096 math", min=16)


@dataclass(frozen=True)
class EvaluateParams:
    max_new_tokens: int = param(48, "token limit of one message (greedy decoding)", min=1)


@dataclass(frozen=True)
class PolicyParams:
    """The embedded TOA policies: fine-tunes of the base with different habits (dits/toa/policies.py)."""

    count: int = param(3, "K embedded policies built when toa.models is empty", min=1)
    scripts_per_task: int = param(3000, "scripted single answers and refinements per task per policy", min=1)
    steps: int = param(300, "optimizer steps per policy", min=1)
    batch_size: int = param(32, "rows per step", min=1)
    learning_rate: float = param(1e-3, "peak learning rate (cosine schedule)", min=0.0)


@dataclass(frozen=True)
class RewardModelParams:
    """TOA's reward model (toa.reward: model): TRL's RewardTrainer (dits/toa/reward_model.py)."""

    questions: int = param(
        200, "sft-pool questions per task whose policy answers, scored by the task metric, make pairs", min=1
    )
    learning_rate: float = param(1e-3, "learning rate", min=0.0)
    epochs: float = param(2.0, "passes over the pairs", min=0.0)
    batch_size: int = param(16, "pairs per step", min=1)
    max_length: int = param(256, "tokens of question + response", min=16)
    held_out: float = param(
        0.2, "fraction of pairs held out for the reported pair accuracy", min=0.0, max=0.9
    )


@dataclass(frozen=True)
class TOAParams:
    """TOA, arXiv 2412.17061: multi-model search, its baselines at equal budget, training on their data."""

    models: list[str] = param(
        [], "K policy checkpoints (local dirs or hub ids); empty = the embedded policies of toa.policies"
    )
    policies: PolicyParams = param(PolicyParams(), "the embedded policies (toa.models empty)")
    methods: list[str] = param(
        ["toa", "random", "parallel", "sequential", "prs", "moa"],
        "methods run at the same budget (the TOA authors' baselines)",
    )
    questions: int = param(64, "search-pool questions per task", paper="59876 UltraFeedback prompts", min=1)
    budgets: list[int] = param(
        [1, 2, 4, 8],
        "n per model of each budget-curve run; the largest trains the target",
        paper="40 (160 = 4 x 40)",
    )
    width: int = param(0, "responses per layer, tree-wide (0 = K·n // 3, the authors' rule)", paper="K·n/3")
    alpha: float = param(0.1, "UCB weight", paper="0.01 alignment, 0.05 WMT, 0.1 math", min=0.0)
    tau: float = param(
        1.0, "sigmoid temperature of rewards inside the tree", paper="0.1 ArmoRM, 1 WMT/math", min=0.0
    )
    topk_child: int = param(1, "responses of the chosen arm descended into", paper="1", min=1)
    single_model: int = param(0, "index in the model list of random sampling's and PRS's one model", min=0)
    moa_layers: int = param(3, "MoA n_iter: layers per stack", paper="4 alignment, 3 WMT", min=1)
    moa_references: int = param(
        0,
        "MoA num_aggregation: previous-layer answers each layer reads, drawn at random (0 = all K)",
        paper="K",
        min=0,
    )
    temperature: float = param(
        0.7, "sampling temperature of every method", paper="0.7 (0.8 TOA data)", min=0.0
    )
    top_p: float = param(1.0, "nucleus sampling", paper="1", min=0.0, max=1.0)
    max_new_tokens: int = param(48, "tokens of one response", paper="2048", min=1)
    reward: str = param(
        "model",
        "what scores a response: model (trained RM) or verifier (the task metric on the gold answer)",
        choices=("model", "verifier"),
    )
    reward_model: RewardModelParams = param(RewardModelParams(), "the reward model (toa.reward: model)")
    reject_rank: int = param(
        0,
        "DPO rejected = the response at this rank (1 = best; 0 = the authors' 30th of 160 scaled to K·n)",
        min=0,
    )
    shards: int = param(2, "parts the search writes; a killed run resumes from finished parts", min=1)


@dataclass(frozen=True)
class VLLMParams:
    """vLLM engine settings (``vllm.LLM`` arguments of the same names; README "Running on vLLM")."""

    dtype: str = param(
        "float32",
        "weights and activations (float32 matches the hf backend token for token)",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    max_model_len: int = param(0, "longest prompt + message in tokens (0 = the model's own limit)", min=0)
    gpu_memory_utilization: float = param(
        0.4,
        "GPU memory share of each engine (a stage may hold two: the policy and the reward's base model)",
        min=0.01,
        max=1.0,
    )
    enable_prefix_caching: bool = param(
        True, "reuse the KV cache of shared prompt prefixes (rollouts share whole dialogues)"
    )
    max_loras: int = param(
        8, "LoRA adapters one batch may mix (influence validation serves one per group)", min=1
    )
    max_lora_rank: int = param(8, "largest LoRA rank served (at least influence.r)", min=1)
    enforce_eager: bool = param(
        True, "skip graph capture and compilation (24 s instead of 65 s to start on CPU)"
    )
    tensor_parallel_size: int = param(1, "GPUs one engine spans", min=1)
    max_num_seqs: int = param(256, "sequences the engine schedules at once", min=1)
    max_num_batched_tokens: int = param(
        131072, "tokens per engine step; seeded requests need prefills that are not chunked on CPU", min=1
    )
    multiprocessing: bool = param(False, "run the engine core in its own (spawned) process, vLLM's default")
    cpu_kvcache_gib: int = param(1, "KV cache on a CPU machine, GiB (VLLM_CPU_KVCACHE_SPACE)", min=1)


@dataclass(frozen=True)
class RayParams:
    """Ray tasks for the shards of the heavy stages (backend.launcher: ray; dits/launch.py)."""

    address: str = param(
        "", "cluster to join ('' = RAY_ADDRESS if set, else start a local one; 'auto' = a running one)"
    )
    num_cpus: float = param(1.0, "CPUs each shard's task reserves", min=0.0)
    num_gpus: float = param(0.0, "GPUs each shard's task reserves (0.5 packs two shards per GPU)", min=0.0)
    max_retries: int = param(
        2, "reruns of a shard whose worker died (the shard restarts from scratch)", min=0
    )


@dataclass(frozen=True)
class BackendParams:
    name: str = param(
        "hf", "inference backend: hf (transformers) or vllm (vLLM's offline engine)", choices=("hf", "vllm")
    )
    batch_size: int = param(128, "rows per forward pass (hf)", min=1)
    threads: int = param(2, "torch CPU threads", min=1)
    vllm: VLLMParams = param(VLLMParams(), "engine settings of backend.name: vllm")
    launcher: str = param(
        "local",
        "where a stage's shards run: local (this process) or ray (one Ray task each)",
        choices=("local", "ray"),
    )
    ray: RayParams = param(RayParams(), "Ray settings of backend.launcher: ray")


@dataclass(frozen=True)
class LoraParams:
    """PEFT LoRA adapters of ``train.method: lora``, merged into the model each fit saves."""

    r: int = param(16, "adapter rank (PEFT r)", min=1)
    alpha: float = param(32.0, "adapter scale numerator (PEFT lora_alpha)", min=0.0)
    dropout: float = param(0.05, "dropout on the adapters' input (PEFT lora_dropout)", min=0.0, max=1.0)
    target_modules: list[str] = param(
        ["all-linear"],
        "modules that get an adapter (PEFT target_modules; all-linear: every linear layer but the head)",
    )


@dataclass(frozen=True)
class TrainParams:
    """How SFT, DPO and the TOA reward model train (sft, dpo, toa_reward, toa_train); dits/train/arguments.py.

    The embedded models (bootstrap, toa_policies) train in fp32 with their own sections' values.
    """

    launcher: str = param(
        "local",
        "local (this process), torchrun or accelerate (processes workers, one per GPU)",
        choices=("local", "torchrun", "accelerate"),
    )
    processes: int = param(2, "processes under torchrun or accelerate (one per GPU)", min=1)
    accelerate_config: str = param(
        "", "accelerate config file (DDP, FSDP or DeepSpeed ZeRO-3: examples in configs/accelerate/)"
    )
    min_steps: int = param(
        1,
        "a fit with fewer optimizer steps stops (one with a learning rate of 0 at every step always does)",
        min=1,
    )
    precision: str = param(
        "fp32",
        "the weights' dtype and the trainer's autocast: bf16 or fp16 halve the memory of the weights "
        "(a full fine-tune in fp16 keeps fp32 weights for the loss scaler; fp16 needs a GPU)",
        choices=("fp32", "bf16", "fp16"),
    )
    gradient_checkpointing: bool = param(
        False, "recompute each layer's activations in the backward pass: less memory, ~1/3 more compute"
    )
    method: str = param(
        "full",
        "full: every weight trains (DPO's reference is the start model, loaded once); lora: PEFT "
        "adapters on a frozen model (DPO's reference is that model with the adapters off)",
        paper="full (8 GPUs)",
        choices=("full", "lora"),
    )
    lora: LoraParams = param(LoraParams(), "the adapters of method: lora")
    micro_batch_size: int = param(
        0,
        "rows each process runs forward and backward at once, accumulating gradients up to the step's "
        "batch (the loss is the same; the activations are the micro-batch's); 0: the whole share at once",
        paper="4 (SFT), 1 (DPO) a GPU",
        min=0,
    )


@dataclass(frozen=True)
class Params:
    seed: int = param(0, "derives every sub-seed", min=0)
    iterations: list[Iteration] = param(
        [Iteration(0, "models/base"), Iteration(1, "models/dpo/iter=0"), Iteration(2, "models/dpo/iter=1")],
        "iterations, one entry each (dvc.yaml foreach)",
        paper="3",
    )
    task: TaskParams = param(TaskParams(), "which tasks and how many questions")
    model: ModelParams = param(ModelParams(), "the base model")
    bootstrap: BootstrapParams = param(BootstrapParams(), "the embedded model")
    reward: RewardParams = param(RewardParams(), "the Optima reward")
    sample: SampleParams = param(SampleParams(), "sampling SFT data")
    sft: SFTParams = param(SFTParams(), "SFT")
    search: SearchParams = param(SearchParams(), "the DITS/Optima tree search")
    pairs: PairParams = param(PairParams(), "preference pairs from the trees")
    influence: InfluenceParams = param(InfluenceParams(), "influence of pair groups (DITS, arXiv 2502.00955)")
    select: SelectParams = param(SelectParams(), "Top-α selection (sql/select.sql)")
    dpo: DPOParams = param(DPOParams(), "DPO on the selected pairs")
    evaluate: EvaluateParams = param(EvaluateParams(), "evaluation")
    toa: TOAParams = param(TOAParams(), "TOA: multi-model search and its baselines (arXiv 2412.17061)")
    train: TrainParams = param(TrainParams(), "how and where SFT, DPO and the reward model train")
    backend: BackendParams = param(BackendParams(), "inference")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``2e-5`` as a string; params are written as the paper prints them.

    A key given twice in one mapping is an error: PyYAML keeps the later value without a word, so
    an ``alpha: 0.3`` added below a forgotten ``alpha: 0.5`` would silently decide the run.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _reject_duplicate_keys(node, self.name, "", set())
        return super().construct_document(node)


def _reject_duplicate_keys(node: yaml.Node, file: str, path: str, visited: set[int]) -> None:
    """Raise DitsError at the second occurrence of a key in any mapping under ``node``.

    ``visited`` holds the nodes already checked: an alias makes one node appear twice, or inside
    itself. Merge keys (``<<``) are skipped: a key that overrides a merged one is YAML's rule.
    """
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, file, f"{path}[{i}]", visited)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                _reject_duplicate_keys(value, file, path, visited)
                continue
            dotted = f"{path}.{key.value}" if path else key.value
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first_line:
                raise DitsError(
                    f"{file}: line {line}: {dotted}: duplicate key (first at line "
                    f"{first_line[key.tag, key.value]}); a key may appear once"
                )
            first_line[key.tag, key.value] = line
            _reject_duplicate_keys(value, file, dotted, visited)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Return the validated params of ``path``; a fault raises DitsError with one line."""
    path = Path(path)
    if not path.exists():
        raise DitsError(f"{path}: not found")
    try:
        with path.open(encoding="utf-8") as f:
            raw = yaml.load(f, Loader=_Loader) or {}
    except yaml.MarkedYAMLError as exc:
        what = ": ".join(text for text in (exc.context, exc.problem) if text)
        line = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        raise DitsError(f"{path}: {line}not valid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise DitsError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise DitsError(f"{path}: not UTF-8 text") from None
    params = _build(Params, raw, str(path), "")
    from dits.tasks.catalog import dataset_tasks, known_tasks

    if not params.task.names:
        raise DitsError(f"{path}: task.names = []: must name at least one of {', '.join(known_tasks())}")
    for name in params.task.names:
        if name not in known_tasks():
            raise DitsError(
                f"{path}: task.names: unknown task {name!r}: known tasks are {', '.join(known_tasks())}"
            )
        if name in dataset_tasks() and name not in params.task.paths:
            raise DitsError(
                f"{path}: task.names: task.paths.{name}: missing; expected the {name} dataset directory"
            )
    for section in ("paths", "slices"):
        for name in getattr(params.task, section):
            if name not in dataset_tasks():
                known = ", ".join(dataset_tasks())
                raise DitsError(f"{path}: task.{section}.{name}: not a dataset task; expected one of {known}")
    known = ("finite_difference", "grad_similarity")
    for name in params.influence.estimators:
        if name not in known:
            raise DitsError(f"{path}: influence.estimators: {name!r}: expected one of {', '.join(known)}")
    if params.select.by == "influence" and params.select.estimator not in params.influence.estimators:
        raise DitsError(
            f"{path}: select.estimator = {params.select.estimator!r}: "
            f"must be one of influence.estimators ({', '.join(params.influence.estimators)})"
        )
    ks = [it.k for it in params.iterations]
    if ks != list(range(len(ks))):
        raise DitsError(f"{path}: iterations = {ks}: must be k = 0, 1, 2, … in order")
    iterations = []
    for it in params.iterations:
        expected = "models/base" if it.k == 0 else f"models/dpo/iter={it.k - 1}"
        if it.policy not in ("", expected):
            raise DitsError(f"{path}: iterations[{it.k}].policy = {it.policy!r}: must be {expected!r}")
        iterations.append(Iteration(it.k, expected))
    params = dataclasses.replace(params, iterations=iterations)
    return params


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _build(cls: type, raw: Any, file: str, prefix: str, default: Any = None) -> Any:
    """Build ``cls`` from a mapping; a key it lacks keeps ``default``'s value (else the field's).

    The default instance matters for sections whose defaults differ per field of the parent, such
    as the debate λ of ``reward``: a partial ``reward.debate`` keeps the debate values.
    """
    if not isinstance(raw, dict):
        raise DitsError(f"{file}: {prefix.rstrip('.') or 'top level'} = {raw!r}: must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise DitsError(f"{file}: {prefix}{key}: unknown key; allowed: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        fallback = getattr(default, name) if default is not None else _field_default(f)
        if name in raw and dataclasses.is_dataclass(hints[name]):
            values[name] = _build(hints[name], raw[name], file, prefix + name + ".", fallback)
        elif name in raw:
            values[name] = _convert(hints[name], raw[name], f.metadata, file, prefix + name)
        elif fallback is not dataclasses.MISSING:
            values[name] = fallback
    return cls(**values)


def _convert(hint: Any, value: Any, meta: Any, file: str, key: str) -> Any:
    def fail(expected: str) -> typing.NoReturn:
        raise DitsError(f"{file}: {key} = {value!r}: must be {expected}")

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, file, key + ".")
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            fail("a list")
        return [_convert(item, v, {}, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            fail("a mapping of names to values")
        return {k: _convert(item, v, {}, file, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            fail("true or false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(_range_text("an integer", meta))
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(_range_text("a number", meta))
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            fail("a string")
    elif isinstance(hint, types.UnionType):
        pass
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        fail(_range_text("an integer" if hint is int else "a number", meta))
    if choices is not None and value not in choices:
        fail("one of " + ", ".join(map(str, choices)))
    return value


def _range_text(kind: str, meta: Any) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"{kind} in [{lo}, {hi}]"
    if lo is not None:
        return f"{kind} ≥ {lo}"
    if hi is not None:
        return f"{kind} ≤ {hi}"
    return kind


def params_yaml(params: Params | None = None) -> str:
    """Return params.yaml text with every key commented (default, paper value)."""
    params = params or Params()
    lines: list[str] = []
    _emit(params, lines, 0)
    return "\n".join(lines) + "\n"


def _emit(obj: Any, lines: list[str], indent: int) -> None:
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        note = f.metadata.get("help", "")
        if f.metadata.get("paper"):
            note += f" (paper: {f.metadata['paper']})"
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:  # {note}")
            _emit(value, lines, indent + 1)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            lines.append(f"{pad}{f.name}:  # {note}")
            lines += [
                f"{pad}  - {yaml.safe_dump(dataclasses.asdict(v), default_flow_style=True).strip()}"
                for v in value
            ]
        else:
            if isinstance(value, dict):  # task.slices: each entry's set keys only
                value = {k: _set_fields(v) if dataclasses.is_dataclass(v) else v for k, v in value.items()}
            dumped = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"{pad}{f.name}: {dumped}  # {note}")


def _set_fields(obj: Any) -> dict:
    """The fields of ``obj`` that differ from their defaults (what a user wrote)."""
    return {
        f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if getattr(obj, f.name) != f.default
    }
