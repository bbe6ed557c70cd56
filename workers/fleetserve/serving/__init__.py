"""Serving: the worker that answers queries from Kafka with each bot's deployed model."""
