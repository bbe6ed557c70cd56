"""Bot definitions: what a bot is, loading user bots, and reproducible fleets of bots.

A bot is a set of intents with their utterances, plus out-of-scope examples that calibrate
its fallback. Users bring one as JSONL or CSV; fleets are drawn from the bundled datasets.
"""
