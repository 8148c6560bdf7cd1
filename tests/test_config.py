from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dits.config import Iteration, Params, load_params, params_yaml
from dits.errors import DitsError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(DitsError) as info:
        load_params(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "params.yaml"))
    return message


def test_empty_file_loads_default_params(tmp_path):
    assert load_params(write(tmp_path, "")) == Params()


def test_given_keys_override_defaults_and_others_keep_them(tmp_path):
    params = load_params(write(tmp_path, "seed: 7\nsample:\n  temperature: 0.3\n  max_messages: 4\n"))
    assert params.seed == 7
    assert params.sample.temperature == 0.3
    assert params.sample.max_messages == 4
    assert params.sample.top_p == Params().sample.top_p
    assert params.sft == Params().sft


def test_integer_given_for_float_field_loads_as_float(tmp_path):
    params = load_params(write(tmp_path, "sample:\n  temperature: 1\n"))
    assert params.sample.temperature == 1.0
    assert isinstance(params.sample.temperature, float)


def test_nested_sections_and_iteration_list_load(tmp_path):
    text = "iterations:\n  - {k: 0}\n  - {k: 1}\nreward:\n  debate:\n    lambda_token: -0.4\n"
    params = load_params(write(tmp_path, text))
    assert params.iterations == [Iteration(0, "models/base"), Iteration(1, "models/dpo/iter=0")]
    assert params.reward.debate.lambda_token == -0.4
    assert params.reward.exchange == Params().reward.exchange


def test_missing_file_raises_naming_the_file(tmp_path):
    with pytest.raises(DitsError, match="nothere.yaml: not found"):
        load_params(tmp_path / "nothere.yaml")


def test_unknown_top_level_key_raises_naming_the_key(tmp_path):
    message = load_error(tmp_path, "sede: 3\n")
    assert "sede: unknown key" in message
    assert "seed" in message.split("allowed:")[1]


def test_unknown_nested_key_raises_naming_the_dotted_key(tmp_path):
    message = load_error(tmp_path, "sft:\n  lerning_rate: 0.1\n")
    assert "sft.lerning_rate: unknown key" in message
    assert "learning_rate" in message.split("allowed:")[1]


def test_wrong_type_raises_naming_key_value_and_expected_type(tmp_path):
    message = load_error(tmp_path, "sample:\n  temperature: hot\n")
    assert "sample.temperature = 'hot': must be a number" in message


def test_boolean_is_not_accepted_as_integer(tmp_path):
    message = load_error(tmp_path, "seed: true\n")
    assert "seed = True: must be an integer" in message


def test_float_above_range_raises_with_allowed_interval(tmp_path):
    message = load_error(tmp_path, "sample:\n  top_p: 1.5\n")
    assert message.endswith("sample.top_p = 1.5: must be a number in [0.0, 1.0]")


def test_integer_below_minimum_raises_with_minimum(tmp_path):
    message = load_error(tmp_path, "bootstrap:\n  steps: 0\n")
    assert message.endswith("bootstrap.steps = 0: must be an integer ≥ 1")


def test_value_outside_choices_raises_listing_choices(tmp_path):
    message = load_error(tmp_path, "backend:\n  name: tgi\n")
    assert message.endswith("backend.name = 'tgi': must be one of hf, vllm")


def test_unknown_task_name_raises_listing_known_tasks(tmp_path):
    message = load_error(tmp_path, "task:\n  names: [synthetic-exchange, hotpot]\n")
    assert "task.names" in message
    assert "'hotpot'" in message
    assert "synthetic-exchange" in message and "synthetic-debate" in message


def test_section_that_is_not_a_mapping_raises(tmp_path):
    message = load_error(tmp_path, "sft: 3\n")
    assert "sft = 3: must be a mapping" in message


def test_iterations_out_of_order_raise(tmp_path):
    message = load_error(tmp_path, "iterations:\n  - {k: 0}\n  - {k: 2}\n")
    assert "iterations = [0, 2]" in message


def test_invalid_yaml_raises_one_line(tmp_path):
    message = load_error(tmp_path, "seed: [1, 2\n")
    assert "not valid YAML" in message


def test_invalid_yaml_names_the_line_and_the_problem(tmp_path):
    message = load_error(tmp_path, "seed: 1\nsample:\n  temperature: [0.7\n")
    assert message.endswith(
        "params.yaml: line 4: not valid YAML: while parsing a flow sequence: "
        "expected ',' or ']', but got '<stream end>'"
    )


def test_empty_task_names_raise_listing_the_known_tasks(tmp_path):
    message = load_error(tmp_path, "task:\n  names: []\n")
    assert message == (
        f"{tmp_path / 'params.yaml'}: task.names = []: must name at least one of "
        "2wikimultihopqa, arc, cbt, gsm8k, hotpotqa, math, mmlu, "
        "synthetic-debate, synthetic-exchange, triviaqa"
    )


def test_duplicate_key_in_a_section_raises_with_its_path_and_both_lines(tmp_path):
    text = "seed: 1\nselect:\n  alpha: 0.5\n  gamma: 1.0\n  alpha: 0.3\n"
    message = load_error(tmp_path, text)
    assert message == (
        f"{tmp_path / 'params.yaml'}: line 5: select.alpha: duplicate key (first at line 3); "
        "a key may appear once"
    )


def test_duplicate_top_level_section_raises_even_when_its_keys_differ(tmp_path):
    message = load_error(tmp_path, "sft:\n  epochs: 1\nseed: 2\nsft:\n  batch_size: 4\n")
    assert message.endswith(": line 4: sft: duplicate key (first at line 1); a key may appear once")


def test_duplicate_key_in_a_list_entry_names_the_entry(tmp_path):
    message = load_error(tmp_path, "iterations:\n  - {k: 0}\n  - {k: 1, k: 2}\n")
    assert message.endswith(
        ": line 3: iterations[1].k: duplicate key (first at line 3); a key may appear once"
    )


def test_the_same_key_in_sibling_sections_is_not_a_duplicate(tmp_path):
    params = load_params(write(tmp_path, "sft:\n  learning_rate: 1e-4\ndpo:\n  learning_rate: 1e-6\n"))
    assert (params.sft.learning_rate, params.dpo.learning_rate) == (1e-4, 1e-6)


def test_a_key_overriding_a_merged_one_is_not_a_duplicate(tmp_path):
    text = (
        "reward:\n  exchange: &lam {lambda_token: -0.5, lambda_loss: 0.8}\n"
        "  debate:\n    <<: *lam\n    lambda_loss: 0.7\n"
    )
    params = load_params(write(tmp_path, text))
    assert params.reward.debate == type(params.reward.debate)(lambda_token=-0.5, lambda_loss=0.7)


def test_float_in_exponent_notation_loads(tmp_path):
    # The help text shows the paper's values as "2e-5" and "1e-6"; a user who copies them into
    # params.yaml must get the number, not "must be a number" (PyYAML reads 2e-5 as a string).
    params = load_params(write(tmp_path, "sft:\n  learning_rate: 2e-5\n"))
    assert params.sft.learning_rate == 2e-5


def test_params_yaml_round_trips_to_default_params(tmp_path):
    assert load_params(write(tmp_path, params_yaml())) == Params()


def test_params_yaml_round_trips_non_default_params(tmp_path):
    default = Params()
    params = dataclasses.replace(
        default,
        seed=3,
        iterations=[
            Iteration(0, "models/base"),
            Iteration(1, "models/dpo/iter=0"),
            Iteration(2, "models/dpo/iter=1"),
        ],
        task=dataclasses.replace(default.task, names=["synthetic-debate"]),
        sft=dataclasses.replace(default.sft, learning_rate=1e-6),
        backend=dataclasses.replace(default.backend, name="vllm"),
    )
    assert load_params(write(tmp_path, params_yaml(params))) == params


def test_params_yaml_comments_every_key_with_its_help():
    lines = [line for line in params_yaml().splitlines() if not line.lstrip().startswith("- ")]
    assert all("  # " in line for line in lines)
    assert "learning_rate: 0.0005  # peak learning rate (paper: 2e-5 IE, 1e-6 math)" in params_yaml()


def test_a_partial_section_keeps_its_own_defaults_not_the_class_defaults(tmp_path):
    params = load_params(write(tmp_path, "reward:\n  debate:\n    lambda_token: -0.3\n"))
    assert params.reward.debate == type(params.reward.debate)(lambda_token=-0.3, lambda_loss=0.9)
    assert params.reward.exchange == Params().reward.exchange


def test_the_paper_profile_loads_with_the_papers_values():
    profile = load_params(Path(__file__).resolve().parents[1] / "profiles" / "hotpotqa-llama3-8b.yaml")
    assert profile.model.base == "meta-llama/Meta-Llama-3-8B-Instruct"
    task = profile.task
    assert (task.sft_examples, task.search_examples, task.val_examples) == (10000, 12000, 20)
    assert (profile.influence.r, profile.influence.group_size, profile.influence.step_lr) == (32, 5, 5e-5)
    assert (profile.dpo.beta, profile.reward.token_floor) == (0.1, 40)
    # what fits one 80 GB GPU, at learning rates for adapters (the header says why)
    train = profile.train
    assert (train.precision, train.gradient_checkpointing, train.method) == ("bf16", True, "lora")
    assert (profile.sft.learning_rate, profile.dpo.learning_rate) == (1e-4, 5e-6)


def test_the_study_profile_differs_from_the_default_only_where_its_header_says():
    study = load_params(Path(__file__).resolve().parents[1] / "profiles" / "study.yaml")
    default = Params()
    assert (study.task.sft_examples, study.task.search_examples, study.task.val_examples) == (96, 260, 40)
    assert (study.sft.learning_rate, study.sft.epochs) == (5e-5, 1.0)
    assert (study.search.selections, study.pairs.keep_fraction, study.influence.val_episodes) == (4, 1.0, 40)
    for section in ("reward", "sample", "dpo", "select", "evaluate", "bootstrap"):
        assert getattr(study, section) == getattr(default, section), section
