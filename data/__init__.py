"""Data package ``fleetserve.datasets``: the vendored intent datasets (no code); see NOTICE.md."""
