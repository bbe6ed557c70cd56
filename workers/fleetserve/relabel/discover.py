"""Intent discovery: clusters of a bot's fallback queries, for an operator to name.

Features: TF-IDF of word 1-2-grams and character 2-4-grams (cosine distance). With the
bot's training data, clusters are scikit-learn's average-linkage agglomeration cut at the
bot's own spread: the largest, over its intents, of the mean distance between two
utterances of one intent, so a candidate intent hangs together at least as tightly as
the bot's loosest intent. (The hidden layer of the bot's own model was tried as a second
view: trained on the bot, it packs the bot's own intents far tighter than any unseen
one, so the spread it measures splits every new intent into fragments.) Without the
bot's data: scikit-learn's HDBSCAN (no cluster count, stragglers left out).
``min_cluster_size`` is the smallest group worth naming as an intent. Each cluster
reports its size (queries), representative texts (closest to the cluster's medoid) and
the nearest existing intent: the intent the deployed model (the bot's own) scored
highest across the cluster's replies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from fleetserve.bots.definition import BotDefinition
from fleetserve.relabel.files import Cluster
from fleetserve.relabel.queue import ReviewEntry

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
DEFAULT_MIN_CLUSTER_SIZE: Final = 3
MAX_CLUSTERED: Final = 3000  # the most helpful entries; the distance matrix is n x n
REPRESENTATIVES: Final = 5
_KEEP_LABEL_OVERLAP: Final = 0.5
_KNOWN_PER_INTENT: Final = 20  # the bot's utterances sampled per intent to measure its spread


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
    distances, spread = _distances([e.text for e in candidates], bot, seed)
    labels = _cluster(distances, spread, min_cluster_size)
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


def _distances(texts: list[str], bot: BotDefinition | None, seed: int) -> tuple[F64, float | None]:
    """Pairwise distances of ``texts`` and, with the bot's data, how far apart the bot's
    own utterances of one intent are (the median over intents of their mean distance)."""
    known = _known_sample(bot, seed) if bot is not None and len(bot.intents()) >= 2 else []
    all_texts = texts + [text for text, _ in known]
    similarity = _tfidf_similarity(all_texts)
    distances: F64 = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    n = len(texts)
    if not known:
        return distances[:n, :n], None
    intents = np.array([intent for _, intent in known])
    block = distances[n:, n:]
    spreads = []
    for intent in np.unique(intents):
        rows = np.flatnonzero(intents == intent)
        if rows.size > 1:
            spreads.append(block[np.ix_(rows, rows)].sum() / (rows.size * (rows.size - 1)))
    return distances[:n, :n], float(np.max(spreads)) if spreads else None


def _known_sample(bot: BotDefinition, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    sample: list[tuple[str, str]] = []
    for intent in bot.intents():
        texts = [u.text for u in bot.utterances if u.intent == intent]
        chosen = rng.permutation(len(texts))[:_KNOWN_PER_INTENT]
        sample += [(texts[i], intent) for i in sorted(chosen)]
    return sample


def _tfidf_similarity(texts: list[str]) -> F64:
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
    return np.asarray((tfidf @ tfidf.T).todense(), np.float64)


def _cluster(distances: F64, spread: float | None, min_cluster_size: int) -> npt.NDArray[np.int64]:
    """Average-linkage cut at the bot's own intent spread when it is known (a new intent
    should hang together as tightly as the bot's intents do); HDBSCAN otherwise. Groups
    smaller than ``min_cluster_size`` are left unclustered (-1)."""
    if spread is None:
        return _hdbscan(distances, min_cluster_size)
    from sklearn.cluster import AgglomerativeClustering  # noqa: PLC0415

    model = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=spread
    )
    labels: npt.NDArray[np.int64] = np.asarray(model.fit_predict(distances), np.int64)
    sizes = np.bincount(labels)
    labels[sizes[labels] < min_cluster_size] = -1
    return labels


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
