"""Intent discovery: clusters of a bot's fallback queries, for an operator to name.

Features: TF-IDF of word 1-2-grams and character 2-4-grams, and, when the bot's training
data is known, the hidden layer of a model of the bot's own family trained on it. The
distance between two queries is one minus the mean of their cosine similarities in each
view. Clusters come from scikit-learn's HDBSCAN, which needs no cluster count and leaves
stragglers unclustered; ``min_cluster_size`` is the smallest group worth naming as an
intent. Each cluster reports its size (queries), representative texts (closest to the
cluster's medoid) and the nearest existing intent (the intent the deployed model scored
highest across the cluster's replies).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from fleetserve.bots.definition import BotDefinition
from fleetserve.clean.family import hidden_features
from fleetserve.relabel.files import Cluster
from fleetserve.relabel.queue import ReviewEntry

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
DEFAULT_MIN_CLUSTER_SIZE: Final = 3
MAX_CLUSTERED: Final = 3000  # the most helpful entries; the distance matrix is n x n
REPRESENTATIVES: Final = 5
_KEEP_LABEL_OVERLAP: Final = 0.5


def discover_clusters(
    entries: Sequence[ReviewEntry],
    bot: BotDefinition | None,
    *,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    previous: Sequence[Cluster] = (),
    seed: int = 0,
) -> list[Cluster]:
    """Cluster the fallback entries; sets each entry's ``cluster`` and ``nearest_intent``."""
    for entry in entries:
        entry.cluster = None
        top = entry.suggestions()
        entry.nearest_intent = top[0].intent if top else None
    candidates = sorted(
        (e for e in entries if e.reasons.get("fallback")), key=lambda e: (-e.priority, e.key)
    )[:MAX_CLUSTERED]
    if len(candidates) < max(min_cluster_size, 2):
        return []
    distances = _distances([e.text for e in candidates], bot, seed)
    labels = _hdbscan(distances, min_cluster_size)
    clusters = []
    found = sorted(set(labels.tolist()) - {-1})
    members_of = {c: np.flatnonzero(labels == c) for c in found}
    order = sorted(found, key=lambda c: -sum(candidates[i].count for i in members_of[c]))
    for number, label in enumerate(order):
        members = members_of[label]
        clusters.append(
            _describe(number, [candidates[i] for i in members], distances[np.ix_(members, members)])
        )
        for i in members:
            candidates[i].cluster = number
    _carry_labels(clusters, previous)
    return clusters


def _distances(texts: list[str], bot: BotDefinition | None, seed: int) -> F64:
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415 - slow import
    from sklearn.pipeline import FeatureUnion  # noqa: PLC0415
    from sklearn.preprocessing import normalize  # noqa: PLC0415

    union = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)),
        ]
    )
    tfidf = normalize(union.fit_transform(texts))
    similarity = np.asarray((tfidf @ tfidf.T).todense(), np.float64)
    if bot is not None and len(bot.intents()) >= 2:
        hidden = normalize(
            hidden_features(
                [u.text for u in bot.utterances], [u.intent for u in bot.utterances], texts, seed
            )
        )
        similarity = (similarity + hidden @ hidden.T) / 2.0
    distances: F64 = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    return distances


def _hdbscan(distances: F64, min_cluster_size: int) -> npt.NDArray[np.int64]:
    from sklearn.cluster import HDBSCAN  # noqa: PLC0415

    model = HDBSCAN(
        min_cluster_size=min_cluster_size,
        metric="precomputed",
        allow_single_cluster=True,
        copy=True,
    )
    labels: npt.NDArray[np.int64] = model.fit_predict(distances).astype(np.int64)
    return labels


def _describe(number: int, members: list[ReviewEntry], distances: F64) -> Cluster:
    centrality = distances.mean(axis=1)
    order = sorted(range(len(members)), key=lambda i: (centrality[i], -members[i].count))
    scores: dict[str, float] = {}
    queries = sum(m.count for m in members)
    for member in members:
        for intent, total in member.score_sums.items():
            scores[intent] = scores.get(intent, 0.0) + total
    nearest = max(scores, key=lambda i: (scores[i], i)) if scores else None
    return Cluster(
        bot_id=members[0].bot_id,
        cluster=number,
        size=queries,
        keys=sorted(m.key for m in members),
        representatives=[members[i].text for i in order[:REPRESENTATIVES]],
        nearest_intent=nearest,
        nearest_score=round(scores[nearest] / queries, 4) if nearest else None,
    )


def _carry_labels(clusters: list[Cluster], previous: Sequence[Cluster]) -> None:
    """A re-run renumbers clusters; a name given to one that mostly survived is kept."""
    named = [p for p in previous if p.label]
    for cluster in clusters:
        keys = set(cluster.keys)
        for old in named:
            old_keys = set(old.keys)
            if len(keys & old_keys) / max(len(keys | old_keys), 1) >= _KEEP_LABEL_OVERLAP:
                cluster.label = old.label
                break
