"""Group unanswered customer questions so staff can see which FAQ entries are missing.

Features are TF-IDF over character 1-2-grams of the content words (robust to jieba's
segmentation: 开票 / 开发票 / 专票 still share 票) and over the jieba words themselves, with
question scaffolding (怎么, 吗, 请问...) removed; each block is L2-normalised, weighted and
concatenated.
Questions are clustered with average-linkage agglomerative clustering on cosine distance, cut at
``distance_threshold``, so the number of groups is never fixed in advance. Identical questions
(after normalisation) are clustered once and weighted by how often they were asked.

Cost is O(m^2) in time and memory for ``m`` distinct questions; above ``EXACT_LIMIT`` distinct
questions a random sample of that size is clustered and the rest are attached to the group whose
members they are, on average, close enough to (the same criterion average linkage uses), or left
out as noise. No Django imports.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from knowledge.ml.normalize import normalize
from knowledge.ml.tokenize import tokenize

EXACT_LIMIT = 6000
DEFAULT_DISTANCE_THRESHOLD = 0.88
CHAR_WEIGHT = 0.5
CHAR_NGRAMS = (1, 2)
N_EXAMPLES = 5
N_KEYWORDS = 5

# Function words and question scaffolding shared by questions of every topic.
STOP_WORDS = frozenset(
    """
    的 了 吗 呢 吧 啊 呀 哦 噢 哈 嘛 么 啦 哇 嗯 额 呃 着 过 地 得 之
    我 你 您 他 她 它 我们 你们 他们 咱们 自己 这 那 这个 那个 这边 那边 这里 那里 这样 那样
    是 在 有 和 与 及 跟 就 都 也 还 又 再 才 要 想 会 能 可以 可不可以 能不能 可否 需要
    怎么 怎么样 怎样 如何 什么 啥 为什么 为啥 哪 哪里 哪个 哪些 多少 几 多久 是不是 有没有
    一下 请问 请 问 问下 问问 麻烦 亲 亲亲 你好 您好 在吗 在不在 客服 谢谢 好的 一个 一些
    给 把 被 让 对 到 从 向 用 为 于 所以 因为 但是 然后 如果 或者 还是 现在 已经 一直
    时候 什么时候 我要 我想 想要 不能 怎么办 咋 咋办 可以吗 后 个 下 些 呗 一般 大概 请教
    """.split()
)

_GREETING = re.compile(r"^(?:(?:你好|您好|亲亲|亲|在吗|在不在|请问|麻烦问一下|问一下|问下|hi|hello)\s*)+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Cluster:
    label: str  # the medoid question, as the customer wrote it
    size: int  # number of questions, repeats included
    member_indices: list[int]  # indices into the input list, ascending
    examples: list[str]  # up to 5 distinct questions, closest to the centre first
    keywords: list[str]  # top TF-IDF words of the group


def normalize_question(text: str) -> str:
    """NFKC, simplified, lower case, punctuation and symbols removed, leading greetings dropped."""
    text = normalize(text or "")
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    text = _SPACES.sub(" ", text).strip()
    stripped = _GREETING.sub("", text).strip()
    return stripped or text


def _words(text: str) -> list[str]:
    return [tok for tok in tokenize(text) if tok.strip() and tok not in STOP_WORDS]


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _features(keys: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Combined L2-normalised feature rows, the word TF-IDF block and its vocabulary.

    Character n-grams are taken inside the content words (stop words removed), so "怎么", "吗"
    and friends do not make unrelated questions look alike; a question made only of stop words
    ("在吗") falls back to its own characters.
    """
    tokens = [_words(key) for key in keys]
    content = [" ".join(toks) or key for toks, key in zip(tokens, keys, strict=True)]
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, sublinear_tf=True).fit_transform(content)
    word_vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True)
    if any(tokens):
        words = word_vectorizer.fit_transform(tokens)
        vocabulary = word_vectorizer.get_feature_names_out()
    else:
        words = sp.csr_matrix((len(keys), 0))
        vocabulary = np.array([], dtype=object)
    combined = sp.hstack([np.sqrt(CHAR_WEIGHT) * chars, np.sqrt(1 - CHAR_WEIGHT) * words], format="csr")
    return l2_normalize(combined), sp.csr_matrix(words), vocabulary


def _similarity(x: sp.csr_matrix) -> np.ndarray:
    """Dense ``x @ x.T``. Frequent columns go through BLAS: as sparse products they cost df^2 each."""
    n = x.shape[0]
    df = np.bincount(x.indices, minlength=x.shape[1])
    frequent = df > max(32, n // 100)
    rare = x[:, ~frequent]
    similarity = (rare @ rare.T).toarray()
    if frequent.any():
        dense = x[:, frequent].toarray()
        similarity += dense @ dense.T
    return similarity


def _agglomerate(x: sp.csr_matrix, threshold: float) -> np.ndarray:
    if x.shape[0] == 1:
        return np.zeros(1, dtype=int)
    distances = 1.0 - _similarity(x)
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    model = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=threshold
    )
    return model.fit_predict(distances)


def _assign_labels(x: sp.csr_matrix, weights: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster label per row; for large inputs cluster a sample and attach the rest."""
    m = x.shape[0]
    if m <= EXACT_LIMIT:
        return _agglomerate(x, threshold)

    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(m, size=EXACT_LIMIT, replace=False))
    sample_labels = _agglomerate(x[sample], threshold)
    labels = np.full(m, -1, dtype=int)
    labels[sample] = sample_labels

    groups = [np.flatnonzero(sample_labels == c) for c in range(sample_labels.max() + 1)]
    groups = [g for g in groups if len(g) > 1 or weights[sample[g[0]]] > 1]
    rest = np.setdiff1d(np.arange(m), sample)
    if groups:
        # Mean member vector: x . mean = average cosine similarity to the group's members.
        means = sp.vstack([sp.csr_matrix(x[sample[g]].mean(axis=0)) for g in groups], format="csr")
        similarity = (x[rest] @ means.T).toarray()
        best = similarity.argmax(axis=1)
        close = similarity[np.arange(len(rest)), best] >= 1.0 - threshold
        group_label = np.array([sample_labels[g[0]] for g in groups])
        labels[rest[close]] = group_label[best[close]]
    # Unattached rows become singletons with fresh labels.
    unattached = np.flatnonzero(labels == -1)
    labels[unattached] = labels.max() + 1 + np.arange(len(unattached))
    return labels


def cluster_questions(
    texts: list[str],
    *,
    min_cluster_size: int = 2,
    max_clusters: int = 50,
    distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
) -> list[Cluster]:
    """Group similar questions; groups smaller than ``min_cluster_size`` are dropped as noise.

    Returns at most ``max_clusters`` groups, largest first. ``distance_threshold`` is the cosine
    distance (0..1) below which the average pair of questions in a group must stay; lower gives
    tighter, smaller groups.
    """
    if min_cluster_size < 1:
        raise ValueError("min_cluster_size must be >= 1")
    if max_clusters < 1:
        raise ValueError("max_clusters must be >= 1")
    if not 0 < distance_threshold <= 1:
        raise ValueError("distance_threshold must be in (0, 1]")

    occurrences: dict[str, list[int]] = {}
    for index, text in enumerate(texts):
        key = normalize_question(text) if isinstance(text, str) else ""
        if key:
            occurrences.setdefault(key, []).append(index)
    if not occurrences:
        return []

    keys = list(occurrences)
    weights = np.array([len(occurrences[k]) for k in keys], dtype=float)
    x, words, vocabulary = _features(keys)
    labels = _assign_labels(x, weights, distance_threshold)

    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    sized = [(int(weights[g].sum()), min(occurrences[keys[i]][0] for i in g), g) for g in groups]
    sized = [s for s in sized if s[0] >= min_cluster_size]
    sized.sort(key=lambda s: (-s[0], s[1]))

    def shown(row: int) -> str:
        """The most common spelling of a distinct question (ties: shortest, then earliest)."""
        spellings = Counter(str(texts[i]).strip() for i in occurrences[keys[row]])
        return min(spellings, key=lambda t: (-spellings[t], len(t)))

    clusters = []
    for size, _, members in sized[:max_clusters]:
        member_weights = weights[members]
        # Rows are unit vectors, so the member maximising x . (weighted sum of members) minimises
        # the summed cosine distance to every question in the group: it is the medoid. Ties (same
        # content words) go to the more frequent, then the shorter, then the earlier question.
        scores = x[members] @ (x[members].T @ member_weights)
        ranked = sorted(
            range(len(members)),
            key=lambda i: (
                -round(float(scores[i]), 9),
                -member_weights[i],
                len(keys[members[i]]),
                occurrences[keys[members[i]]][0],
            ),
        )
        keywords: list[str] = []
        if words.shape[1]:
            mass = words[members].T @ member_weights
            for term in np.argsort(-mass, kind="stable"):
                if mass[term] <= 0 or len(keywords) == N_KEYWORDS:
                    break
                if len(vocabulary[term]) > 1:  # single characters ("开", "大") say little on their own
                    keywords.append(str(vocabulary[term]))
        clusters.append(
            Cluster(
                label=shown(members[ranked[0]]),
                size=size,
                member_indices=sorted(i for row in members for i in occurrences[keys[row]]),
                examples=[shown(members[i]) for i in ranked[:N_EXAMPLES]],
                keywords=keywords,
            )
        )
    return clusters
