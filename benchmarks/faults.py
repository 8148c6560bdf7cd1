"""Kill-anywhere check: each heavy stage of iteration 0 SIGKILLed at random points, rerun, compared.

    python benchmarks/faults.py [--kills 10] [--seed 0] [--stages sample sft ...] [--keep]

On the tiny profile of ``tests/test_pipeline.py``, in a fresh git + DVC repo, every upstream stage
is reproduced once; then, per stage, one uninterrupted run gives the wall time T and the content
hash of each output (a table: its rows sorted by the table's key, ``seconds`` columns aside; a
model: each file's bytes; ``metrics/iter=0.json``: its JSON). Each kill starts the stage as a user
would (``dvc repro -s -f STAGE@0``, in its own process group), SIGKILLs the whole group at a point
drawn uniformly in (0, T), then reruns it (``dvc repro -s STAGE@0``) and checks:

- the rerun's outputs hash as the uninterrupted run's did;
- nothing torn is left under ``data/`` or ``models/``: no ``.tmp`` name, no file the uninterrupted
  run did not leave, no empty or unreadable Parquet file;
- the finished units listed in ``.dits/work/STAGE/iter=0/<key>/`` after the kill are the ones the
  rerun says it reused (``reused N finished part``), and the work directory is gone once it is done.

Before the uninterrupted run and before each kill the stage is made new: its ``dvc.lock`` entry and
DVC's run cache are dropped, or the rerun would check the uninterrupted run's outputs out of the
cache instead of running the stage, and so is a work directory an earlier run did not clean.
DVC 3 leaves no lock that blocks the rerun: the repo lock is an fcntl lock the kernel drops with
the process, and the rwlock entries of dead processes are removed with a warning (counted as
"stale rwlock"). But DVC writes ``dvc.lock`` and ``.dvc/tmp/rwlock`` in place, and a kill while
it does leaves them empty or cut; DVC then refuses to run. The check then does what a user would
(``dvc.lock`` back as before the run, like ``git checkout dvc.lock``; a stale lock file removed,
as DVC's message says), notes it, counts it under "DVC refused", and reruns once more.

Prints one Markdown table, a row per stage: T (the uninterrupted run's wall seconds, DVC included);
kills that landed before the stage finished, and those of them after DVC had started the stage's
command (the rest hit start-up); identical reruns; torn files; finished units found after the kills
(summed) and the reruns that logged exactly those; reruns that left the work directory or a temp
dir under ``.dits/tmp``; reruns where DVC removed a killed process from its rwlock, or refused to
run; mean seconds per rerun and, of them, start-up (wall seconds less the stage's own clock).
Exits non-zero when a rerun differs from the uninterrupted run or a file is torn.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dits.storage.schemas import KEYS  # noqa: E402
from tests.test_pipeline import BIN, _make_repo  # noqa: E402

STAGES = ("sample", "sft", "search", "influence", "dpo", "evaluate")
REUSED = re.compile(r"reused\s+(\d+)\s+finished\s+part")
STALE_RWLOCK = re.compile(r"had\s+been\s+killed\.\s+Auto\s+removed\s+it\s+from\s+the\s+lock\s+file")
# What DVC says when a lock stops it, and the lock file a user is told to remove then.
STALE_LOCKS = {
    "Unable to acquire lock": ".dvc/tmp/lock",
    "is being blocked by": ".dvc/tmp/rwlock",
    "Unable to read RWLock-file": ".dvc/tmp/rwlock",
    "RWLock-file format error": ".dvc/tmp/rwlock",
}
TORN_LOCKFILE = re.compile(r"dvc\.lock'(, YAML file structure is corrupted| validation failed)")


@dataclass(frozen=True)
class Run:
    """One finished ``dvc repro``: exit status, wall seconds, the stage's own seconds, its output."""

    rc: int
    seconds: float
    stage_seconds: float | None
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Trial:
    """What one kill and its rerun showed."""

    at: float  # seconds after the start when the group was killed
    landed: bool  # the stage was still running then
    in_command: bool  # DVC had started the stage's command (not still starting up itself)
    differs: tuple[str, ...]  # outputs whose hash is not the uninterrupted run's (all when the rerun failed)
    torn: tuple[str, ...]  # 'path (why)' under data/ and models/ after the rerun
    units: int  # entries in the stage's work directory after the kill
    reused: int | None  # N of the rerun's `reused N finished part` lines, summed; None: no such line
    work_left: bool  # the work directory still held a key's directory after the rerun
    tmp_left: bool  # .dits/tmp still held a temp dir after the rerun
    restored: bool  # DVC checked the killed run's outputs out of its run cache instead of rerunning
    stale_rwlock: bool  # DVC removed the killed process from its rwlock, with a warning
    fixes: tuple[str, ...]  # what DVC needed before it would run again (empty: nothing)
    rerun: Run


def say(message: str) -> None:
    """Progress on stderr, flushed: the run takes minutes."""
    print(message, file=sys.stderr, flush=True)


def dvc_env(repo: Path) -> dict[str, str]:
    """Return the environment of ``tests/test_pipeline.py``'s runs, running the copy's own code.

    ``PYTHONPATH`` puts the copy's ``dits/`` before the installed one, so edits to the checkout
    during the run do not reach it; lines are wide enough not to wrap the log lines checked.
    """
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
        "DVC_NO_ANALYTICS": "1",
        "CI": "true",
        "COLUMNS": "400",
    }


def stage_seconds(repo: Path, stage: str) -> float | None:
    """Return the seconds the stage's own clock measured (imports and DVC excluded), if it got that far."""
    path = repo / "metrics" / "stages" / f"{stage}@0.json"
    return json.loads(path.read_text())["seconds"] if path.exists() else None


def repro(repo: Path, stage: str, log: Path, *flags: str) -> Run:
    """Return the run of ``dvc repro FLAGS STAGE@0`` to completion; stdout and stderr stay under ``log``."""
    clocks = repo / "metrics" / "stages"
    clocks.mkdir(parents=True, exist_ok=True)
    for path in clocks.glob("*.json"):
        path.unlink()
    start = time.perf_counter()
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        cmd = ["dvc", "repro", *flags, f"{stage}@0"]
        rc = subprocess.run(cmd, cwd=repo, env=dvc_env(repo), stdout=out, stderr=err).returncode
    seconds = time.perf_counter() - start
    output = Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()
    return Run(rc, seconds, stage_seconds(repo, stage), *output)


def stage_outputs(repo: Path, stage: str) -> list[str]:
    """Return the outputs of ``stage@0`` to compare: its tables and models, and the eval metrics.

    The other metrics files hold timings or are derived from the outputs compared.
    """
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]["do"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec["outs"]]
    metrics = [next(iter(m)) if isinstance(m, dict) else m for m in spec.get("metrics", [])]
    paths = [*outs, *(m for m in metrics if m == "metrics/iter=${item.k}.json")]
    return [p.replace("${item.k}", "0") for p in paths]


def table_hash(folder: Path) -> str:
    """Return the hash of a table's rows sorted by its key, timing columns aside."""
    table = folder.parts[-2]
    parts = sorted(folder.glob("*.parquet"))
    frame = pl.concat([pl.read_parquet(p, hive_partitioning=False) for p in parts])
    frame = frame.drop([c for c in frame.columns if c == "seconds"]).sort(KEYS[table])
    return hashlib.sha256(str(frame.rows()).encode()).hexdigest()


def content_hashes(repo: Path, outputs: list[str]) -> dict[str, str]:
    """Return one hash per table, per model file and per metrics file among ``outputs``."""
    hashes = {}
    for name in outputs:
        path = repo / name
        if not path.exists():
            hashes[name] = "missing"
        elif name.startswith("data/"):
            hashes[name] = table_hash(path)
        elif path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                hashes[str(file.relative_to(repo))] = hashlib.sha256(file.read_bytes()).hexdigest()
        else:
            canonical = json.dumps(json.loads(path.read_text()), sort_keys=True)
            hashes[name] = hashlib.sha256(canonical.encode()).hexdigest()
    return hashes


def tree_files(repo: Path) -> set[str]:
    return {str(p.relative_to(repo)) for top in ("data", "models") for p in (repo / top).rglob("*")}


def torn_files(repo: Path, expected: set[str]) -> list[str]:
    """Return 'path (why)' for each temp, unexpected, empty or unreadable file under data/ and models/."""
    torn = []
    for name in sorted(tree_files(repo)):
        path = repo / name
        if ".tmp" in path.name:
            torn.append(f"{name} (temp name)")
        elif name not in expected:
            torn.append(f"{name} (not left by the uninterrupted run)")
        elif path.suffix == ".parquet" and path.stat().st_size == 0:
            torn.append(f"{name} (empty)")
        elif path.suffix == ".parquet":
            try:
                pq.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                torn.append(f"{name} (unreadable: {exc})")
    return torn


def work_root(repo: Path, stage: str) -> Path:
    return repo / ".dits" / "work" / stage / "iter=0"


def finished_units(repo: Path, stage: str) -> int:
    """Return the entries of the stage's work directories: each is one unit a rerun may reuse."""
    root = work_root(repo, stage)
    return sum(1 for key in root.iterdir() if key.is_dir() for _ in key.iterdir()) if root.is_dir() else 0


def make_new_to_dvc(repo: Path, stage: str) -> str:
    """Drop the stage's dvc.lock entry, DVC's run cache and the stage's work, as before a first run.

    Returns the dvc.lock written, the state a user would have committed before the run.
    """
    lock_path = repo / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text())
    lock["stages"].pop(f"{stage}@0", None)
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))
    shutil.rmtree(repo / ".dvc" / "cache" / "runs", ignore_errors=True)
    shutil.rmtree(repo / ".dits" / "work" / stage, ignore_errors=True)
    return lock_path.read_text()


def unblock(repo: Path, refusal: str, lockfile: str) -> list[str]:
    """Return what was done so that DVC runs again after ``refusal``: what a user is told to do.

    DVC writes dvc.lock and its rwlock in place (truncate, then write), so a kill in between
    leaves them empty or cut: dvc.lock goes back to its state before the run (``git checkout
    dvc.lock`` when it was committed), and a stale lock file is removed, as DVC's message says.
    """
    fixes = []
    if TORN_LOCKFILE.search(refusal):
        (repo / "dvc.lock").write_text(lockfile)
        fixes.append("dvc.lock torn, restored")
    for text, lock in STALE_LOCKS.items():
        if text in refusal and (repo / lock).exists():
            (repo / lock).unlink()
            fixes.append(f"{lock} removed")
    return fixes


def kill_at(repo: Path, stage: str, at: float, log: Path) -> bool:
    """Start the stage in its own process group and SIGKILL the group at ``at`` seconds.

    Returns whether the kill landed (False: the stage had finished by then).
    """
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        proc = subprocess.Popen(
            ["dvc", "repro", "-s", "-f", f"{stage}@0"],
            cwd=repo,
            env=dvc_env(repo),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=at)
            return False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the group's other members die a moment after the leader
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return True


def trial(repo: Path, stage: str, at: float, reference: dict[str, str], files: set[str], log: Path) -> Trial:
    """Return what a kill at ``at`` seconds and the rerun after it showed."""
    outputs = stage_outputs(repo, stage)
    lockfile = make_new_to_dvc(repo, stage)
    kill_log = log.with_name(log.name + "-kill")
    landed = kill_at(repo, stage, at, kill_log)
    in_command = f"> dits run {stage}" in Path(f"{kill_log}.out").read_text()
    units = finished_units(repo, stage)
    rerun = repro(repo, stage, log.with_name(log.name + "-rerun"), "-s")
    stale = bool(STALE_RWLOCK.search(rerun.stderr))
    fixes = unblock(repo, rerun.stderr, lockfile) if rerun.rc != 0 else []
    if fixes:
        say(f"  DVC refused to run after the kill ({'; '.join(fixes)}):\n{rerun.stderr.strip()}")
        rerun = repro(repo, stage, log.with_name(log.name + "-rerun2"), "-s")
    if rerun.rc != 0:
        say(f"  the rerun failed (exit {rerun.rc}):\n{rerun.stderr[-3000:]}")
    logged = [int(n) for n in REUSED.findall(rerun.stderr)]
    hashes = content_hashes(repo, outputs) if rerun.rc == 0 else {}
    tmp = repo / ".dits" / "tmp"
    return Trial(
        at=at,
        landed=landed,
        in_command=landed and in_command,
        differs=tuple(
            sorted(k for k in reference.keys() | hashes.keys() if reference.get(k) != hashes.get(k))
        ),
        torn=tuple(torn_files(repo, files)),
        units=units,
        reused=sum(logged) if logged else None,
        work_left=work_root(repo, stage).is_dir() and any(work_root(repo, stage).iterdir()),
        tmp_left=tmp.is_dir() and any(tmp.iterdir()),
        restored="is cached - skipping run" in rerun.stdout,
        stale_rwlock=stale,
        fixes=tuple(fixes),
        rerun=rerun,
    )


def reuse_ok(t: Trial) -> bool:
    """The rerun said it reused exactly the units listed after the kill (none: no line, or 0)."""
    return t.reused == t.units or (t.units == 0 and t.reused is None)


def check_stage(repo: Path, stage: str, kills: int, seed: int, logs: Path, window: str) -> dict:
    """Return the table row of ``stage``: its uninterrupted run, then ``kills`` kills and reruns.

    Kill points are uniform over the whole run (``window`` "run"), or over its last
    ``stage_seconds`` (``"work"``): after the imports, where the stage's units are computed.
    """
    outputs = stage_outputs(repo, stage)
    make_new_to_dvc(repo, stage)
    first = repro(repo, stage, logs / f"{stage}-uninterrupted", "-s")
    if first.rc != 0:
        sys.exit(f"{stage}@0: the uninterrupted run failed:\n{first.stderr[-3000:]}")
    reference, files = content_hashes(repo, outputs), tree_files(repo)
    say(f"{stage}@0: uninterrupted {first.seconds:.1f} s, {first.stage_seconds} s in the stage")
    rng = random.Random(f"{seed}-{stage}")
    trials = []
    for i in range(kills):
        low = 0.0 if window == "run" else max(0.0, first.seconds - (first.stage_seconds or 0.0))
        t = trial(repo, stage, rng.uniform(low, first.seconds), reference, files, logs / f"{stage}-{i}")
        trials.append(t)
        say(
            f"  kill {i + 1}/{kills} at {t.at:.1f} s{'' if t.landed else ' (finished first)'}: "
            f"{t.units} finished units, rerun {t.rerun.seconds:.1f} s"
            f"{' (outputs restored from the run cache)' if t.restored else ''}, "
            f"{'DIFFERS' if t.differs else 'identical'}, {len(t.torn)} torn, "
            f"reused logged {t.reused}{'' if reuse_ok(t) else ' (MISMATCH)'}"
            f"{', work dir left' if t.work_left else ''}{', .dits/tmp left' if t.tmp_left else ''}",
        )
        for name in t.differs:
            say(f"    differs: {name}")
        for name in t.torn:
            say(f"    torn: {name}")
    startup = [t.rerun.seconds - t.rerun.stage_seconds for t in trials if t.rerun.stage_seconds is not None]
    return {
        "stage": stage,
        "T s": f"{first.seconds:.1f}",
        "kills": kills,
        "landed": sum(t.landed for t in trials),
        "in command": sum(t.in_command for t in trials),
        "identical reruns": sum(not t.differs for t in trials),
        "torn files": sum(len(t.torn) for t in trials),
        "reused units": sum(t.units for t in trials),
        "reuse logged right": sum(reuse_ok(t) for t in trials),
        "work left": sum(t.work_left for t in trials),
        "tmp left": sum(t.tmp_left for t in trials),
        "stale rwlock": sum(t.stale_rwlock for t in trials),
        "DVC refused": sum(bool(t.fixes) for t in trials),
        "s per rerun": f"{statistics.mean(t.rerun.seconds for t in trials):.1f}" if trials else "-",
        "start-up s": f"{statistics.mean(startup):.1f}" if startup else "-",
    }


def print_table(rows: list[dict]) -> None:
    """Print ``rows`` as a Markdown table (it goes into docs as it is)."""
    header = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]).ljust(w) for h, w in zip(header, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=10, help="kills per stage")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--keep", action="store_true", help="keep the temp repo and the logs for inspection")
    parser.add_argument(
        "--window",
        choices=("run", "work"),
        default="run",
        help="draw kill points over the whole run (default) or over the stage's own work, after its imports",
    )
    args = parser.parse_args()
    stages = [s for s in STAGES if s in args.stages]
    start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="dits-faults-"))
    repo, logs = root / "repo", root / "logs"
    repo.mkdir()
    logs.mkdir()
    _make_repo(repo)
    say(f"repo: {repo}")
    upstream = repro(repo, stages[-1], logs / "upstream")
    if upstream.rc != 0:
        sys.exit(f"dvc repro {stages[-1]}@0 failed:\n{upstream.stderr[-3000:]}")
    say(f"upstream: dvc repro {stages[-1]}@0 in {upstream.seconds:.1f} s")
    rows = [check_stage(repo, stage, args.kills, args.seed, logs, args.window) for stage in stages]
    print_table(rows)
    say(f"total {time.perf_counter() - start:.0f} s")
    if args.keep:
        say(f"kept: {root}")
    else:
        shutil.rmtree(root)
    if any(r["identical reruns"] != r["kills"] or r["torn files"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
