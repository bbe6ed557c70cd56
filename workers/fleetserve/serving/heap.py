"""The serving process's heap, settled once it starts serving.

A worker's start-up leaves hundreds of thousands of long-lived objects: numpy, onnx,
onnxruntime, numba and confluent-kafka's modules, the routing table, the cache's
bookkeeping. Every full collection of the cyclic garbage collector walks all of them, and
the passes' short-lived dicts and tuples trigger collections all the time. ``gc.freeze``
moves what exists at that point into a generation the collector never walks; refcounting
still frees those objects, so only cycles among them would be kept.

Measured (py-spy ``--native`` on one saturated worker, 100 bots, Kafka included): the
collector took 11.9 % of the serving loop's samples before; the pass without Kafka
(``bench/components/hotpath_bench.py``'s records, 1,000 bots, Zipf) spent 10.6-14.8
CPU-us per reply in it, 1.8-2.2 after a freeze, and none with young collections every
``YOUNG_THRESHOLD`` allocations as well.

Process-wide, so it is the process owner's call: ``fleetserve worker`` makes it; a worker
run inside another program (the tests run workers in threads) leaves the heap alone.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

# Young collections every this many net allocations (CPython's default is 700). A pass
# allocates and frees tens of thousands of dicts and tuples; at 700 the collector runs in
# the middle of passes and walks, then promotes, objects that die when the pass ends.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Collect what start-up left as garbage, then keep the collector off the survivors."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    logger.info("heap settled: %d start-up objects outside the collector", gc.get_freeze_count())
