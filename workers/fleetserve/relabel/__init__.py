"""The data loop: relabeling jobs over the replies.

``collect`` reads replies into per-bot review queues (``intake`` is its pure core,
``selection`` and ``textnoise`` its rules, ``queue`` and ``files`` the entries and their
files); ``discover`` clusters fallback queries into candidate intents; ``apply`` merges
accepted labels into bot files; ``report`` says what changed per bot.
"""

from fleetserve.relabel.apply import apply_review
from fleetserve.relabel.botsource import BotSource
from fleetserve.relabel.collect import CollectOptions, CollectReport, collect
from fleetserve.relabel.discover import discover_clusters
from fleetserve.relabel.intake import Intake, IntakeRules
from fleetserve.relabel.report import relabel_report
from fleetserve.relabel.selection import SelectionRules

__all__ = [
    "BotSource",
    "CollectOptions",
    "CollectReport",
    "Intake",
    "IntakeRules",
    "SelectionRules",
    "apply_review",
    "collect",
    "discover_clusters",
    "relabel_report",
]
