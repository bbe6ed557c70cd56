"""What the tests share. Fixtures load through ``pytest_plugins`` in conftest.py; everything
else is imported from the module that defines it.

* ``kafka.py``: the test process's broker and factories for topics, producers, consumers.
* ``bots.py``: real bots built into a real store, and a deployer of their snapshots.
* ``serving.py``: declared topics, in-process and child-process workers, outcome counting.
* ``builders.py``: queries, records, replies and dead letters, built one way for all tests.
* ``outcomes.py``: a run's committed outcomes, an unreadable snapshot, a worker supervisor.
* ``dead_letters.py``: dead letters written straight to a topic, for the operators' tools.
* ``cache.py``: a counted wrapper around the real snapshot loader.
* ``contract_examples.py``: the contracts' own examples and how errors name their fields.
* ``kafka_log.py`` (with ``kafka_wire.py``, ``record_batches.py``, ``committed_log.py``):
  a raw Kafka reader that applies transaction markers itself.
* ``hostile/``: hypothesis strategies of hostile query records, and their matching.
"""
