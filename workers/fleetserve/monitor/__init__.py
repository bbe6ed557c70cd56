"""`fleetserve monitor`: per-bot windowed tables (faust), the rollout guard, the console."""
