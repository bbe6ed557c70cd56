"""Exactly-once against at-least-once serving: what the transactions cost, in the workers
and in the broker, on the same preloaded Zipf traffic in alternating runs.

Run: python bench/components/delivery_bench.py [--bots 1000] [--queries 100000]
                                             [--rounds 2] [--out bench/results/delivery.json]

The throughput scenario runs exactly-once (the default) and charges the broker about ten
times the CPU per reply that the relay costs it; this separates the part the transactions
(markers per partition, offset commits in the transaction) account for from the part
any producer of one reply per query would cost.
"""

from __future__ import annotations

from fleetserve_bench.alternating import arguments, run_alternating

VARIANTS: dict[str, tuple[str, ...]] = {
    "exactly-once": (),
    "at-least-once": ("--delivery", "at-least-once"),
}


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "bench/results/delivery.json")
    run_alternating("delivery", VARIANTS, args)


if __name__ == "__main__":
    main()
