"""The demo behind the README's main command: broker, bots, a worker group, real answers."""
