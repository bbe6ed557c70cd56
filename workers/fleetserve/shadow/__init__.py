"""Shadow deployments: how a shadow group's replies compare with the real group's, per bot."""
