"""SFT, DPO and the reward model in 2 CPU processes (torchrun, accelerate) train as one process does.

A step's batch is split over the processes (``dits.train.world``), so both runs take the same
steps on the same rows: the logged loss curves agree to float rounding, and the saved models load.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest

from dits.backends.load import load_model
from dits.backends.reward import RewardScorer
from dits.config import BootstrapParams, DPOParams, SFTParams, TrainParams
from dits.errors import DitsError
from dits.toa.reward_model import fit_reward
from dits.train import world
from dits.train.distributed import train
from dits.train.fit import Fit, fit_dpo, fit_sft, trainer_path

TINY = BootstrapParams(seed=0, hidden_size=32, layers=1, heads=2, intermediate_size=64, vocab_size=400)
TOLERANCE = 1e-4  # nats; measured: 0 to 3e-6 (the same rows, summed in another order)
TORCHRUN = TrainParams(launcher="torchrun", processes=2)
# On CPU, accelerate starts N processes only from a MULTI_GPU config with use_cpu (it then runs
# torchrun, gloo); MULTI_CPU on one machine, like --cpu --num_processes 2, runs one process.
ACCELERATE_CPU = """compute_environment: LOCAL_MACHINE
distributed_type: {kind}
num_machines: 1
num_processes: 2
mixed_precision: 'no'
use_cpu: true
"""


TRAINERS = {"sft": fit_sft, "dpo": fit_dpo, "reward": fit_reward}


def fit(trainer, model, rows, settings, out) -> Fit:
    path = trainer_path(TRAINERS[trainer])
    return Fit(path, str(model), rows, settings, str(out), f"{trainer} test", seed=0, threads=1)


def dpo_rows(chats) -> list[dict]:
    chosen, rejected = "Alice: founder 1 ada", "Alice: what do you know ?"
    return [
        {
            "prompt": chat[:1],
            "chosen": [{"role": "assistant", "content": chosen if i % 3 else rejected}],
            "rejected": [{"role": "assistant", "content": rejected if i % 3 else chosen}],
        }
        for i, chat in enumerate(chats)
    ]


def assert_same_training(one: dict, two: dict, out_one, out_two) -> float:
    """Assert equal loss curves and equal saved weights; return the largest loss difference."""
    curve_one, curve_two = [r["loss"] for r in one["loss"]], [r["loss"] for r in two["loss"]]
    assert len(curve_one) == len(curve_two) >= 3
    gap = max(abs(a - b) for a, b in zip(curve_one, curve_two, strict=True))
    print(f"loss one process {curve_one}\nloss two processes {curve_two}\nmax |difference| {gap:.2e}")
    assert gap < TOLERANCE
    model_one, model_two = load_model(out_one)[0], load_model(out_two)[0]
    weights = max(
        (a - b).abs().max().item()
        for a, b in zip(model_one.parameters(), model_two.parameters(), strict=True)
    )
    print(f"max |weight difference| {weights:.2e}")
    assert weights < 1e-3
    assert not (out_two / "training_args.bin").exists()
    return gap


def test_sft_under_torchrun_in_two_processes_trains_as_one_process(base, tmp_path):
    path, chats = base
    sft = dataclasses.asdict(SFTParams(learning_rate=3e-3, epochs=5.0, batch_size=4, max_length=256))
    one = train(TrainParams(), fit("sft", path, chats, sft, tmp_path / "one"))  # 20 steps
    two = train(TORCHRUN, fit("sft", path, chats, sft, tmp_path / "two"))
    assert_same_training(one, two, tmp_path / "one", tmp_path / "two")


def test_dpo_under_accelerate_in_two_processes_trains_as_one_process(base, tmp_path):
    path, chats = base
    config = tmp_path / "cpu.yaml"
    config.write_text(ACCELERATE_CPU.format(kind="MULTI_GPU"))
    launch = TrainParams(launcher="accelerate", processes=2, accelerate_config=str(config))
    dpo = dataclasses.asdict(
        DPOParams(beta=0.1, learning_rate=1e-2, epochs=3.75, batch_size=4, max_length=256)
    )
    one = train(TrainParams(), fit("dpo", path, dpo_rows(chats), dpo, tmp_path / "one"))  # 15 steps
    two = train(launch, fit("dpo", path, dpo_rows(chats), dpo, tmp_path / "two"))
    assert_same_training(one, two, tmp_path / "one", tmp_path / "two")


def test_reward_model_under_torchrun_reports_as_one_process(base, tmp_path):
    path, chats = base
    pairs = [
        {"prompt": r["prompt"], "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]}
        for r in dpo_rows(chats)
    ]
    rm = dict(learning_rate=1e-3, epochs=3.0, batch_size=4, max_length=256, held_out=0.25)
    one = train(TrainParams(), fit("reward", path, pairs, rm, tmp_path / "one"))
    two = train(TORCHRUN, fit("reward", path, pairs, rm, tmp_path / "two"))
    print(f"reward one process {one}\nreward two processes {two}")
    gap = max(abs(a - b) for a, b in zip(one.pop("loss"), two.pop("loss"), strict=True))
    assert gap < TOLERANCE
    assert one == two  # counts and accuracies, measured on each saved model
    assert RewardScorer.from_path(tmp_path / "two", batch_size=4).score([pairs[0]["prompt"]], ["x"])


def test_a_launcher_that_starts_one_process_of_two_is_refused(base, tmp_path):
    path, chats = base
    config = tmp_path / "cpu.yaml"
    config.write_text(ACCELERATE_CPU.format(kind="MULTI_CPU"))  # runs ONE process, silently
    launch = TrainParams(launcher="accelerate", processes=2, accelerate_config=str(config))
    sft = dataclasses.asdict(SFTParams(batch_size=4))
    with pytest.raises(
        DitsError, match=r"^sft test: .*train.processes = 2 but the launcher started a world of 1"
    ):
        train(launch, fit("sft", path, chats, sft, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_failing_child_gives_one_line_naming_the_unit(base, tmp_path):
    path, chats = base
    sft = dataclasses.asdict(SFTParams(batch_size=4, max_length=16))  # every row is longer
    with pytest.raises(DitsError) as err:
        train(TORCHRUN, fit("sft", path, chats, sft, tmp_path / "out"))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("sft test: training under torchrun in 2 processes failed (exit 1): sft test: ")
    assert "sft.max_length = 16: all 16 rows are longer than the 16 tokens" in message


def test_a_missing_launcher_is_one_line(base, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        DitsError, match=r"^train.launcher = torchrun: no torchrun command .* torch package\)$"
    ):
        train(TORCHRUN, fit("sft", base[0], base[1], {}, tmp_path / "out"))


def test_a_batch_that_does_not_split_over_the_processes_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert world.per_device(8, "sft.batch_size") == 4
    with pytest.raises(DitsError, match=r"^sft.batch_size = 5: not a multiple of the 2 training processes"):
        world.per_device(5, "sft.batch_size")
