"""The serving process's heap settling (serving/heap.py), in a process of its own: a
freeze in the test process would keep every later test's start-up objects from the
collector."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, weakref
from fleetserve.serving.heap import YOUNG_THRESHOLD, settle_heap

class Node:
    pass

before = gc.get_threshold()
gc.disable()  # so only settle_heap can collect the cycle below
cycle = Node()
cycle.me = cycle  # start-up garbage: a cycle nobody references
alive = weakref.ref(cycle)
del cycle
settle_heap()
assert alive() is None  # collected before the freeze, not frozen with the survivors
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:]), (before, gc.get_threshold())
print("ok")
"""


def test_settling_collects_then_freezes_and_raises_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
