"""search@k: DITS/Optima tree search with SFT(k) on the search pool → nodes and pairs tables.

The stage runs ``search.shards`` parts; each finished part waits in the work directory, so a killed
run resumes from the parts it finished. ``--shard I/N`` runs one part by hand and writes it directly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import polars as pl

from dits.backends.hf import HFBackend
from dits.config import Params
from dits.pairs import pairs_frame
from dits.prepare import examples_from_frame
from dits.progress import bar, log
from dits.sample import token_normaliser_sample
from dits.search.dialogue_search import search_trees, token_normaliser
from dits.search.tree import nodes_frame
from dits.seeds import derive_seed
from dits.shard import in_shard
from dits.stage import DATA, METRICS, base_model, clock, setup, sft_model, write_json
from dits.store import part_path, read_table, write_part
from dits.tasks import get_task
from dits.workdir import inputs_hash, work_dir


def search_pool(params: Params, k: int, name: str) -> pl.DataFrame:
    tasks = read_table(DATA, "tasks", k)
    return tasks.filter((pl.col("pool") == "search") & (pl.col("task") == name))


def normalisers(params: Params, k: int) -> dict[str, float]:
    """T_max per task: 80th percentile of tokens of dialogues sampled by SFT(k) (papers/dits.md §3)."""
    out = {}
    for name in params.task.names:
        policy = HFBackend.from_path(sft_model(k, name), params.backend.batch_size)
        pool = examples_from_frame(search_pool(params, k, name))
        counts = token_normaliser_sample(
            policy, get_task(name, params.seed), pool, params, k, params.search.normaliser_dialogues
        )
        out[name] = token_normaliser(counts)
    return out


def search_part(
    params: Params, k: int, shard: tuple[int, int], t_max: dict[str, float]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (nodes, pairs) of the trees of one shard of the search pool, all trees in lockstep."""
    scorer = HFBackend.from_path(base_model(params), params.backend.batch_size)
    nodes, pairs = [], []
    for name in params.task.names:
        task = get_task(name, params.seed)
        rows = search_pool(params, k, name).filter(in_shard(pl.col("example_id"), shard))
        examples = examples_from_frame(rows)
        if not examples:
            continue
        policy = HFBackend.from_path(sft_model(k, name), params.backend.batch_size)
        with bar(f"search@{k} {name} part {shard[0]}/{shard[1]}", len(examples)) as advance:
            trees = search_trees(
                policy,
                scorer,
                task,
                examples,
                params.search,
                params.sample,
                params.reward,
                t_max[name],
                derive_seed(params.seed, "search", k),
                str(sft_model(k, name)),
                advance,
            )
        nodes.append(nodes_frame(trees))
        pairs.append(pairs_frame(trees, {e.example_id: e for e in examples}, task.family, params.pairs))
    return pl.concat(nodes), pl.concat(pairs)


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"search@{k}"):
        if shard != (0, 1):
            nodes, pairs = search_part(params, k, shard, normalisers(params, k))
            write_part(part_path(DATA, "nodes", k, shard[0]), "nodes", nodes)
            write_part(part_path(DATA, "pairs", k, shard[0]), "pairs", pairs)
            return
        read = {
            "seed": params.seed,
            "task": params.task,
            "search": params.search,
            "pairs": params.pairs,
            "sample": params.sample,
            "reward": params.reward,
        }
        key = inputs_hash(
            {name: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for name, v in read.items()},
            [DATA / "tasks", base_model(params), *(sft_model(k, t) for t in params.task.names), "dits"],
        )
        work = work_dir("search", k, key)
        if (work / "t_max.json").exists():
            t_max = json.loads((work / "t_max.json").read_text())
        else:
            t_max = normalisers(params, k)
            write_json(work / "t_max.json", t_max)
        n = params.search.shards
        for i in range(n):
            if (work / f"pairs-{i}.parquet").exists():
                log(f"search@{k}: part {i}/{n} already done, reusing it")
                continue
            nodes, pairs = search_part(params, k, (i, n), t_max)
            write_part(work / f"nodes-{i}.parquet", "nodes", nodes)
            write_part(work / f"pairs-{i}.parquet", "pairs", pairs)
        for table in ("nodes", "pairs"):
            out = DATA / table / f"iter={k}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for i in range(n):
                shutil.copy2(work / f"{table}-{i}.parquet", out / f"part-{i}.parquet")
        write_json(METRICS / "search" / f"iter={k}.json", {"token_normaliser": t_max})
