"""The serving core's values: plain data every layer shares, with no I/O and no clients.

* ``records.py``: a consumed record (``InboundRecord``), its headers and coordinates.
* ``outcome.py``: what becomes of one record: ``Failure``, ``Verdict``, ``Origin``, and
  ``WorkerIdentity``, who is answering.
* ``route.py``: ``Route``, the snapshot that answers a bot on a stage.
* ``facts.py``: facts written once: stage names, the bot id pattern, epoch bounds, the
  largest model the factory publishes.
* ``clock.py``: now, in epoch milliseconds.
"""
