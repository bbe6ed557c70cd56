"""Bot definitions: what a bot is, loading user bots, and reproducible fleets of bots.

A bot is a set of intents with their utterances, plus out-of-scope examples that calibrate
its fallback. Users bring one as JSONL or CSV; fleets are drawn from the bundled datasets.
"""

from fleetserve.bots.assemble import LoadedBot, LoadReport
from fleetserve.bots.datasets import dataset_root
from fleetserve.bots.definition import BotDefinition, Utterance, validate_bot_id
from fleetserve.bots.discover import BotResult, BotSource, discover_bots, find_bots, load_source
from fleetserve.bots.fleet import make_bot, make_fleet
from fleetserve.bots.loader import load_bot, load_bot_with_report, parse_bot
from fleetserve.bots.rows import BotFormat
from fleetserve.bots.writer import WriteReport, encode_bot, write_fleet

__all__ = [
    "BotDefinition",
    "BotFormat",
    "BotResult",
    "BotSource",
    "LoadReport",
    "LoadedBot",
    "Utterance",
    "WriteReport",
    "dataset_root",
    "discover_bots",
    "encode_bot",
    "find_bots",
    "load_bot",
    "load_bot_with_report",
    "load_source",
    "make_bot",
    "make_fleet",
    "parse_bot",
    "validate_bot_id",
    "write_fleet",
]
