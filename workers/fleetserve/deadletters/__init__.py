"""Dead letters: what a worker writes for a record it cannot answer, and what operators do.

Written by workers (pure, imported by the serving path):

* ``reasons.py``: the failure taxonomy, every reason code with its phase and disposition.
* ``build.py``: dead_letter v1 records, within their contract's caps, and minimal ones.
* ``headers.py``: the ``fleetserve_dlt-*`` and replay header names, and the headers of a
  dead letter.

Read by operators (``fleetserve dlq``): ``operators/``, which the serving path never
imports.
"""
