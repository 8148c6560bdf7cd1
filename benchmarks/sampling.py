"""One sampling step with each row's own seed: noise drawn on the host vs on the model's device.

    python benchmarks/sampling.py [--shapes 48x897 128x897 128x32000] [--steps 30]

A step is what the decode loop does per token: softmax at the temperature, one ``Exp(1)`` draw per
row from that row's generator, ``argmax(p / q)``, the tokens read back. ``HFBackend._pick`` keeps
the generators on the logits' device; the host path is the alternative it replaced, which copies
the logits to the host at every token. On CPU both paths are the same work. Prints milliseconds per
step for each shape.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from isolated import device_line

from dits.backends.base import Sampling
from dits.backends.hf import HFBackend


def host_pick(logits: torch.Tensor, sampling: Sampling, generators: list[torch.Generator]) -> torch.Tensor:
    """The same draw with CPU generators: the logits go to the host and the tokens come back."""
    probs = torch.softmax(logits.float().cpu() / sampling.temperature, dim=-1)
    noise = torch.empty_like(probs)
    for row, generator in zip(noise, generators, strict=True):
        row.exponential_(generator=generator)
    return (probs / noise).argmax(-1).to(logits.device)


Pick = Callable[[torch.Tensor, Sampling, list[torch.Generator]], torch.Tensor]


def ms_per_step(pick: Pick, logits: torch.Tensor, device: str, steps: int) -> float:
    """Milliseconds per step of ``pick`` with one generator per row on ``device``."""
    sampling = Sampling(temperature=0.7)
    generators = [torch.Generator(device=device).manual_seed(i) for i in range(logits.shape[0])]
    for _ in range(3):  # warm-up
        pick(logits, sampling, generators).tolist()
    if logits.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        pick(logits, sampling, generators).tolist()  # the decode loop reads the tokens every step
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", nargs="+", default=["48x897", "128x897", "128x32000"], help="ROWSxVOCAB")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(device_line(args.device))
    print(f"{'rows':>5} {'vocab':>7} {'host ms/step':>13} {'device ms/step':>15} {'ratio':>6}")
    for shape in args.shapes:
        rows, vocab = map(int, shape.split("x"))
        logits = torch.randn(rows, vocab, device=args.device) * 3
        host = ms_per_step(host_pick, logits, "cpu", args.steps)
        device = ms_per_step(HFBackend._pick, logits, args.device, args.steps)
        print(f"{rows:>5} {vocab:>7} {host:>13.2f} {device:>15.2f} {host / device:>6.1f}")


if __name__ == "__main__":
    main()
