"""Fixed against adaptive pass size: the same preloaded Zipf traffic, alternating runs.

Run: python bench/components/pass_size_bench.py [--bots 1000] [--queries 100000]
                                              [--rounds 2] [--out bench/results/pass_size.json]

Each round runs a 2-worker group with passes fixed at --max-batch (500, ``--max-pass 500``)
and one with the adaptive pass size (the defaults: up to 4,000 records while passes come
back full and finish within 250 ms), each warmed first with one query per bot. Runs
alternate so that a change in the shared machine's load hits both alike.
"""

from __future__ import annotations

from fleetserve_bench.alternating import arguments, run_alternating

VARIANTS: dict[str, tuple[str, ...]] = {"fixed-500": ("--max-pass", "500"), "adaptive": ()}


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "bench/results/pass_size.json")
    run_alternating("pass_size", VARIANTS, args)


if __name__ == "__main__":
    main()
