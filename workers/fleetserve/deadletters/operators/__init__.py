"""The operators' tools over the dead-letter topic: ``fleetserve dlq list|show|stats|replay``.

* ``read.py`` / ``records.py``: the topic read to its end, each record decoded or described.
* ``filters.py``: the shared ``--reason --bot --since ...`` filters, pure.
* ``render.py``, ``stats.py``: one line per dead letter, a full view, counts.
* ``replay_plan.py``: what a replay may send and what it sends, pure.
* ``replay.py``: the replay run; ``sink.py`` its transactional writer, ``ledger.py`` the
  replay ledger, ``pacing.py`` its rate limit.
"""
