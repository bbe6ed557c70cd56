"""Label-noise detection and correction on a bot's training data (``fleetserve clean``).

``pico`` is the procedure, ``channel`` its noise model, ``family`` the one adapter to the
bot's model family, ``botdata`` reads a bot file with its contradictions, ``cleaned``
turns a result into suspects and a cleaned bot file.
"""

from fleetserve.clean.channel import Channel, choose_family, fit_channel
from fleetserve.clean.family import FamilyChecker
from fleetserve.clean.pico import PicoConfig, PicoResult, Round, run_pico

__all__ = [
    "Channel",
    "FamilyChecker",
    "PicoConfig",
    "PicoResult",
    "Round",
    "choose_family",
    "fit_channel",
    "run_pico",
]
