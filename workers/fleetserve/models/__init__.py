"""The model family: hashed n-gram EmbeddingBag intent classifiers, built per bot.

``pipeline.build_model`` is the entry point for the builder; ``runtime`` is what a worker
needs to serve a published file.
"""
