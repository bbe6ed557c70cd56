"""Baseline processes `fleetserve bench` runs beside the worker: the relay and the faust agent.

``relay``: the physical limit, a confluent-kafka consume-produce-commit loop with no work.
``faust_agent``: the obvious implementation, a faust-streaming agent answering one query
at a time from a naive in-process dict of models.
"""
