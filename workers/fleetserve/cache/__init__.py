"""The worker's model cache: snapshots loaded on demand, kept by measured bytes.

* :class:`ModelCache` - LRU by measured bytes (and optionally count), pins, single-flight
  loads per key on a small pool, failures remembered for a TTL, retire on a live swap.
* :class:`SnapshotLoader` - the miss path: manifest -> sha256 checks -> guard -> session.
* :class:`CacheMetrics` - its Prometheus metrics.
* ``footprint.py`` says how a model's bytes are measured and why; ``heap.py`` binds glibc;
  ``reaper.py`` frees evicted sessions off the load threads; ``lru.py`` and
  ``negative.py`` are the lock-free bookkeeping; ``onnx_guard.py`` refuses unsafe models.
"""
