"""Build bots into published snapshots: one bot, a directory of bots, or a whole fleet."""
