"""The crash-loop breaker: a record that killed workers twice is set aside, unread.

A bug nobody has found yet (a native crash in onnxruntime, a memory blow-up on one odd
input) kills the process without an exception to catch. Its restart reads the same
record and dies again, and so does every worker that takes the partition over. The
breaker counts, per record, how many times its processing was under way when a worker
died, keeps the count where any worker of the group finds it, and turns the record into
a ``poison`` dead letter once the count reaches ``--poison-after`` (2).

* ``inflight.py``: each pass first writes its offsets to a small local file; a process
  that dies leaves it behind, a clean stop clears it.
* ``evidence.py``: crash events per partition as pure data, and the verdicts they give.
* ``ledger.py``: a restarted worker publishes its dead predecessor's file as crash events
  to the compacted crashes topic, which every worker of the group tails.
* ``guard.py``: per pass, the poison verdicts, and one record at a time through a
  partition with crash evidence, so a second crash names exactly one record.
"""
