"""Clustering of unanswered questions: planted paraphrase groups, medoid labels, edge cases, speed.

The last section checks the vendored ECharts build the analytics pages use to chart these groups.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import adjusted_rand_score

from knowledge.ml import clustering
from knowledge.ml.clustering import Cluster, cluster_questions, normalize_question

INVOICE = [
    "能开发票吗", "可以开发票吗？", "怎么开发票", "发票怎么开", "我要开发票", "需要开发票，怎么弄",
    "开票怎么弄", "能不能开个发票", "发票能开吗", "麻烦给我开一下发票", "购买后可以开具发票吗", "下单了想开发票",
]  # fmt: skip
REFUND = [
    "退款什么时候到账", "退款多久到账？", "退款几天能到账", "退的钱什么时候到", "退款怎么还没到账",
    "退款多久能退回来", "申请退款后多久到账", "退款到账要几天", "钱什么时候退回来", "退款一般多久到",
    "退款到账时间是多久", "我的退款到账了吗",
]  # fmt: skip
TRACKING = [
    "我的快递到哪了", "快递怎么还没到", "查一下快递到哪了", "快递现在在哪里", "快递走到哪了",
    "物流到哪里了", "帮我查下物流", "物流信息怎么不更新", "物流一直没动", "能帮我看看物流吗",
]  # fmt: skip
NOISE = [
    "你们店在哪个城市", "衣服会起球吗", "这款有黑色吗", "可以用花呗分期吗", "保修期多久", "客服几点下班",
    "有优惠券吗", "可以货到付款吗",
]  # fmt: skip
GROUPS = {"invoice": INVOICE, "refund": REFUND, "tracking": TRACKING}


def _planted(seed: int = 0) -> tuple[list[str], list[str]]:
    items = [(text, name) for name, texts in GROUPS.items() for text in texts]
    items += [(text, f"noise{i}") for i, text in enumerate(NOISE)]
    random.Random(seed).shuffle(items)
    return [t for t, _ in items], [g for _, g in items]


def _predicted(clusters: list[Cluster], n: int) -> list[str]:
    labels = [f"single{i}" for i in range(n)]  # unclustered questions are their own group
    for k, cluster in enumerate(clusters):
        for i in cluster.member_indices:
            labels[i] = f"cluster{k}"
    return labels


def _purity(clusters: list[Cluster], truth: list[str]) -> float:
    majority = sum(Counter(truth[i] for i in c.member_indices).most_common(1)[0][1] for c in clusters)
    return majority / sum(c.size for c in clusters)


def test_planted_paraphrase_groups_are_recovered():
    texts, truth = _planted()
    clusters = cluster_questions(texts)

    assert adjusted_rand_score(truth, _predicted(clusters, len(texts))) >= 0.7
    assert _purity(clusters, truth) >= 0.95
    # Invoice and refund paraphrases share their key words and must each come out whole.
    by_group = {}
    for cluster in clusters[:2]:
        groups = {truth[i] for i in cluster.member_indices}
        assert len(groups) == 1
        by_group[groups.pop()] = cluster
    assert by_group.keys() == {"invoice", "refund"}
    assert by_group["invoice"].size == len(INVOICE)
    assert by_group["refund"].size == len(REFUND)
    assert by_group["invoice"].label in INVOICE
    assert by_group["refund"].label in REFUND
    assert "发票" in "".join(by_group["invoice"].keywords)
    assert "退款" in by_group["refund"].keywords
    # Tracking is one cluster or splits exactly along its synonyms (快递 / 物流), never mixed with another group.
    tracking = [c for c in clusters if any(truth[i] == "tracking" for i in c.member_indices)]
    words = [{"快递" if "快递" in texts[i] else "物流" for i in c.member_indices} for c in tracking]
    assert len(tracking) == 1 or sorted(map(sorted, words)) == [["快递"], ["物流"]]
    assert all({truth[i] for i in c.member_indices} == {"tracking"} for c in tracking)
    assert sum(c.size for c in tracking) == truth.count("tracking")  # and none of them is dropped as noise
    # Unrelated one-off questions are mostly left out as noise.
    clustered = {i for c in clusters for i in c.member_indices}
    assert sum(1 for i, g in enumerate(truth) if g.startswith("noise") and i in clustered) <= 2


def test_cluster_structure_and_medoid_label():
    texts, _ = _planted(seed=1)
    clusters = cluster_questions(texts)

    assert clusters  # the planted groups are found, so the loop below checks something
    assert [c.size for c in clusters] == sorted((c.size for c in clusters), reverse=True)
    seen: set[int] = set()
    for cluster in clusters:
        assert cluster.size == len(cluster.member_indices) >= 2
        assert cluster.member_indices == sorted(cluster.member_indices)
        assert not seen & set(cluster.member_indices)
        seen |= set(cluster.member_indices)
        members = [texts[i] for i in cluster.member_indices]
        assert cluster.label == cluster.examples[0]
        distinct = {normalize_question(m) for m in members}  # the clusterer dedupes on this key
        assert len(cluster.examples) == min(clustering.N_EXAMPLES, len(distinct)) == len(set(cluster.examples))
        assert set(cluster.examples) <= set(members)

        # The label is the medoid: no member has a smaller summed cosine distance to the others.
        keys = [normalize_question(t) for t in members]
        x, _, _ = clustering._features(keys)
        distances = 1 - (x @ x.T).toarray()
        totals = distances.sum(axis=1)
        assert totals[members.index(cluster.label)] == pytest.approx(totals.min())


def test_repeated_question_is_weighted_and_labels_the_group():
    texts = ["能开发票吗", "可以开发票吗", "能开发票吗？", "发票能开吗", "能开发票吗"]
    (cluster,) = cluster_questions(texts)
    assert cluster.size == 5
    assert cluster.member_indices == [0, 1, 2, 3, 4]
    assert cluster.label == "能开发票吗"  # asked three times; its most common spelling is shown
    assert cluster.examples[0] == "能开发票吗" and "能开发票吗？" not in cluster.examples


def test_normalisation_is_chinese_aware():
    assert normalize_question("  你好，請問ＫＦ能開發票嗎？！ ") == "kf能开发票吗"
    assert normalize_question("【退款】多久到账～～") == "退款 多久到账"
    assert normalize_question("你好") == "你好"  # a bare greeting is kept rather than emptied
    # Full-width, traditional and punctuated variants collapse to one distinct question.
    (cluster,) = cluster_questions(["能開發票嗎？", "能开发票吗", "能开发票吗!!!"])
    assert cluster.size == 3 and len(cluster.examples) == 1


@pytest.mark.parametrize("texts", [[], [""], ["", "？？", "   ", "……"]])
def test_empty_input(texts):
    assert cluster_questions(texts) == []


def test_single_question_and_all_distinct():
    assert cluster_questions(["能开发票吗"]) == []
    (single,) = cluster_questions(["能开发票吗"], min_cluster_size=1)
    assert single == Cluster("能开发票吗", 1, [0], ["能开发票吗"], ["开发票"])
    assert cluster_questions(["衣服会起球吗", "客服几点下班", "有优惠券吗"]) == []


def test_min_cluster_size_and_max_clusters():
    texts, _ = _planted()
    everything = cluster_questions(texts)
    assert len(everything) >= 3
    assert cluster_questions(texts, max_clusters=1) == everything[:1]
    assert all(c.size >= 6 for c in cluster_questions(texts, min_cluster_size=6))
    with_singletons = cluster_questions(texts, min_cluster_size=1, max_clusters=500)
    assert sum(c.size for c in with_singletons) == len(texts)


def test_stricter_threshold_gives_tighter_groups():
    texts, _ = _planted()
    loose = cluster_questions(texts, distance_threshold=0.95)
    tight = cluster_questions(texts, distance_threshold=0.5)
    assert loose[0].size > tight[0].size


def test_sampled_path_for_large_inputs(monkeypatch):
    texts, truth = _planted()
    monkeypatch.setattr(clustering, "EXACT_LIMIT", 30)
    clusters = cluster_questions(texts)
    assert _purity(clusters, truth) >= 0.9
    sizes = Counter()
    for cluster in clusters:
        sizes[Counter(truth[i] for i in cluster.member_indices).most_common(1)[0][0]] += cluster.size
    assert sizes["invoice"] >= 8 and sizes["refund"] >= 8


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        cluster_questions(["a"], min_cluster_size=0)
    with pytest.raises(ValueError):
        cluster_questions(["a"], max_clusters=0)
    with pytest.raises(ValueError):
        cluster_questions(["a"], distance_threshold=0)


def _synthetic_questions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    products = ["手机", "耳机", "外套", "裤子", "鞋子", "面膜", "口红", "台灯", "背包", "手表", "充电器", "衬衫"]
    templates = [
        "{p}能开发票吗", "{p}退款多久到账", "我的{p}快递到哪了", "{p}尺码怎么选", "{p}什么时候补货",
        "{p}有黑色吗", "{p}保修多久", "{p}有优惠券吗", "{p}能货到付款吗", "{p}会缩水吗",
    ]  # fmt: skip
    return [f"{rng.choice(templates).format(p=rng.choice(products))} 订单{rng.randrange(10**7)}" for _ in range(n)]


def test_five_thousand_distinct_questions_cluster_into_a_readable_number_of_groups():
    # Speed is measured by benchmarks, not asserted here (a loaded CI machine would make it flaky).
    texts = _synthetic_questions(5000)
    assert len({normalize_question(t) for t in texts}) == 5000
    clusters = cluster_questions(texts)
    assert 10 <= len(clusters) <= 50
    assert clusters[0].size > 100


# --- Vendored ECharts -------------------------------------------------------------------------

VENDOR = Path(__file__).resolve().parents[2] / "static" / "vendor" / "echarts"


def test_vendored_echarts_matches_its_version_file():
    js_path = VENDOR / "echarts.min.js"
    assert js_path.is_file()
    js = js_path.read_bytes()
    assert len(js) > 500 * 1024

    info = (VENDOR / "VERSION").read_text(encoding="utf-8").splitlines()
    version = info[0].strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    fields = dict(line.split(": ", 1) for line in info[1:] if ": " in line)
    assert fields["package"] == f"echarts@{version}"
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", fields["integrity"])
    assert hashlib.sha256(js).hexdigest() == fields["file-sha256"]

    # The published build opens with the ASF licence header and declares its version on export.
    text = js.decode("utf-8")
    assert "Licensed to the Apache Software Foundation" in text[:400]
    assert re.findall(r'\bt\.version="([^"]+)"', text) == [version]
    assert (VENDOR / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert "Apache ECharts" in (VENDOR / "NOTICE").read_text(encoding="utf-8")
