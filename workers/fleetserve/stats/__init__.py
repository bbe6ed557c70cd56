"""Per-bot statistics: pure summaries of answered and dead-lettered queries, and their merging."""
