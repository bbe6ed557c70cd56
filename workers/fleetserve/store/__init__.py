"""The artifact store: immutable, content-addressed model snapshots."""
