"""fleetserve: serve thousands of small per-chatbot intent models behind Apache Kafka."""

__version__ = "0.1.0"
