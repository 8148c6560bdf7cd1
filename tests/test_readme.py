"""Every command in the README runs: each ```bash and ```python block, on the tiny pipeline's outputs.

The blocks run in README order, one after another, in one workspace: a copy of the tiny pipeline
run of tests/test_pipeline.py (`repro` in tests/conftest.py: a fresh git repo holding the
project's files, the tiny params.yaml committed, after `dvc repro`), on branch `main` as a clone
of this repository is. So a block sees what the blocks above it did (a commit, an experiment, an
export), as a reader who follows the README does. A bash block runs with `bash -euo pipefail`, a
python block with the venv's python, each with the workspace as its working directory and
BLOCK_TIMEOUT seconds; a block that fails names its README line, its text and the end of its
stderr. Other fences (yaml, text, the stage diagrams) are not run.

A block that cannot run here (a pip install, a GPU, a cluster, data or a model of your own, a
study of hours) is marked on the line right before its fence, with the reason:

    <!-- readme-test: skip (needs a GPU) -->
    ```bash

The reason is required; pytest reports it as the skip reason. Any other line that mentions
`readme-test` (a typo, a marker not right before a bash or python fence) fails
`test_readme_markers_are_well_formed`, so every bash or python block is either run or visibly
skipped.

README names that the tiny workspace lacks (a dataset directory, a dataset task) are replaced by
SUBSTITUTIONS below, in every block, before it runs; an entry that no longer occurs in a run block
fails the marker test, so the table cannot go stale.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_datasets_gsm8k import _published as gsm8k_files
from test_datasets_hotpotqa import _published as hotpotqa_files
from test_pipeline import REPO, _env

README = REPO / "README.md"
BLOCK_TIMEOUT = 300  # seconds; the longest block, an experiment on the tiny profile, takes about 70
SHELL = {"bash", "sh", "shell"}
PYTHON = {"python", "py"}

# README text -> what the tiny workspace runs instead. `{datasets}` is a directory of tiny published
# dataset files (tests/test_datasets_*.py). The tiny profile's tasks are the embedded ones.
SUBSTITUTIONS = {
    "/data/hotpotqa": "{datasets}/hotpotqa",
    "/data/gsm8k": "{datasets}/gsm8k",
    "--task hotpotqa": "--task synthetic-exchange",
    'row["task"] == "hotpotqa"': 'row["task"] == "synthetic-exchange"',
    "models/sft/iter=0/hotpotqa": "models/sft/iter=0/synthetic-exchange",
}

MARKER = re.compile(r"<!-- readme-test: skip \((?P<reason>.*\S.*)\) -->")
FENCE = re.compile(r"```(?P<lang>[\w+-]*)\s*")


@dataclass(frozen=True)
class Block:
    line: int  # the README line of the opening fence, from 1
    lang: str
    text: str
    skip: str | None  # the reason, for a block marked not to run

    @property
    def runs(self) -> bool:
        return self.lang in SHELL | PYTHON and self.skip is None


def parse(markdown: str) -> tuple[list[Block], list[str]]:
    """Every fenced block of ``markdown``, and a line per malformed or misplaced marker."""
    lines = markdown.splitlines()
    blocks, problems, i = [], [], 0
    while i < len(lines):
        fence = FENCE.fullmatch(lines[i])
        if not fence:
            if "readme-test" in lines[i]:
                next_line = lines[i + 1] if i + 1 < len(lines) else ""
                fence_next = FENCE.fullmatch(next_line)
                where = f"README.md:{i + 1}"
                if not MARKER.fullmatch(lines[i].strip()):
                    problems.append(f"{where}: not a marker `<!-- readme-test: skip (REASON) -->`")
                elif not fence_next or fence_next["lang"] not in SHELL | PYTHON:
                    problems.append(f"{where}: a marker must be right before a bash or python fence")
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            problems.append(f"README.md:{i + 1}: a fence that is never closed")
            break
        marker = MARKER.fullmatch(lines[i - 1].strip()) if i else None
        text = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(i + 1, fence["lang"], text, marker["reason"] if marker else None))
        i = end + 1
    return blocks, problems


def substitute(text: str, datasets: Path) -> str:
    for old, new in SUBSTITUTIONS.items():
        text = text.replace(old, new.format(datasets=datasets))
    return text


def run_block(block: Block, cwd: Path, scripts: Path, datasets: Path) -> None:
    """Run one block in ``cwd``; fail with its README line, its text and the end of its output."""
    text = substitute(block.text, datasets)
    if block.lang in PYTHON:
        script = scripts / f"readme_L{block.line}.py"  # not in cwd: a name like trl.py would shadow TRL
        script.write_text(text)
        args = [sys.executable, str(script)]
    else:
        args = ["bash", "-euo", "pipefail", "-c", text]
    try:
        out = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        pytest.fail(_report(block, text, f"timed out after {BLOCK_TIMEOUT} s", stderr, ""), pytrace=False)
    if out.returncode != 0:
        pytest.fail(_report(block, text, f"exit {out.returncode}", out.stderr, out.stdout), pytrace=False)


def _report(block: Block, text: str, how: str, stderr: str, stdout: str) -> str:
    tail = "\n".join(stderr.splitlines()[-25:])
    out = "\n".join(stdout.splitlines()[-10:])
    return (
        f"README.md:{block.line}: the ```{block.lang} block failed ({how}):\n{text}"
        f"--- stderr, last lines ---\n{tail}\n--- stdout, last lines ---\n{out}"
    )


BLOCKS, PROBLEMS = parse(README.read_text())


def test_readme_markers_are_well_formed() -> None:
    assert not PROBLEMS, "\n".join(PROBLEMS)
    run = [b for b in BLOCKS if b.runs]
    assert run, "no README block runs"
    for old in SUBSTITUTIONS:
        assert any(old in b.text for b in run), f"SUBSTITUTIONS: {old!r} is in no block that runs"


def test_parse_runs_every_unmarked_block_and_names_bad_markers() -> None:
    markdown = "\n".join(
        [
            "```bash",
            "dits show",
            "```",
            "<!-- readme-test: skip (needs a GPU) -->",
            "```bash",
            "dvc repro",
            "```",
            "```yaml",
            "a: 1",
            "```",
            "<!-- readme-test: skip -->",
            "```python",
            "print(1)",
            "```",
            "<!-- readme-test: skip (a reason) -->",
            "",
            "```bash",
            "false",
            "```",
        ]
    )
    blocks, problems = parse(markdown)
    assert [(b.line, b.lang, b.runs, b.skip) for b in blocks] == [
        (1, "bash", True, None),
        (5, "bash", False, "needs a GPU"),
        (8, "yaml", False, None),
        (12, "python", True, None),
        (17, "bash", True, None),
    ]
    assert blocks[0].text == "dits show\n"
    assert problems == [
        "README.md:11: not a marker `<!-- readme-test: skip (REASON) -->`",
        "README.md:15: a marker must be right before a bash or python fence",
    ]


def test_a_failing_block_names_its_readme_line_command_and_stderr(tmp_path: Path) -> None:
    block = Block(42, "bash", "echo fine\nls /no/such/dir\necho never\n", None)
    with pytest.raises(pytest.fail.Exception) as failed:
        run_block(block, tmp_path, tmp_path, tmp_path)
    message = str(failed.value)
    assert message.startswith("README.md:42: the ```bash block failed (exit 2):\necho fine\n")
    assert "/no/such/dir" in message.split("--- stderr, last lines ---")[1]
    assert "never" not in message.split("--- stdout, last lines ---")[1]  # -e: it stopped there


@pytest.fixture(scope="module")
def workspace(repro: Path, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A copy of the tiny run (the README's experiments and commits never reach `repro`), on branch
    main, and a directory of tiny published HotpotQA and GSM8K files."""
    root = tmp_path_factory.mktemp("readme")
    left_out = {repro / "data" / "experiments", repro / ".dvc" / "tmp"}  # studies' runs, DVC's locks

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if Path(folder, name) in left_out]

    ws = root / "ws"
    shutil.copytree(repro, ws, symlinks=True, ignore=ignore)
    subprocess.run(["git", "branch", "-M", "main"], cwd=ws, check=True, capture_output=True)
    datasets = root / "datasets"
    for name, write in (("hotpotqa", hotpotqa_files), ("gsm8k", gsm8k_files)):
        (datasets / name).mkdir(parents=True)
        write(datasets / name)
    scripts = root / "scripts"
    scripts.mkdir()
    return ws, scripts, datasets


def _param(block: Block):
    if block.skip is None:
        return pytest.param(block, id=f"L{block.line}")
    skip = pytest.mark.skip(reason=f"README.md:{block.line}: {block.skip}")
    return pytest.param(block, id=f"L{block.line}", marks=skip)


@pytest.mark.slow
@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS if b.lang in SHELL | PYTHON])
def test_readme_block_runs(block: Block, workspace: tuple[Path, Path, Path]) -> None:
    run_block(block, *workspace)
