"""Hand-off triggers found in a customer's text: an explicit request for a human, and anger.

Pure Python (no Django). Every function is total: any string in, an answer out, never an exception.

* ``human_request(text)``: the customer asks for a person (转人工, 人工客服, 找客服, 真人, 找你们领导,
  "talk to a human"...), but not 人工智能 / 人工费 / 真人实拍.
* ``anger_score(text, history)``: 0..1 from independent cues combined by noisy-OR
  (``1 - prod(1 - w)``), angry at ``ANGER_THRESHOLD``:

  - lexicon hits from ``data/anger_lexicon.tsv`` (longest entry first; weight-0 entries are stop
    phrases such as 垃圾袋 or 投诉建议, blanked out first), cancelled by a negation just before them in the same clause
    (不生气, 没有不满, 不会给差评) and strengthened by an intensifier just before them
    (太, 非常, 真的, 到底...: ``w -> 1 - (1 - w) ** 1.5``);
  - repeated punctuation (!!, ???, ?!);
  - shouting in English (two or more all-caps words that are not acronyms or brands);
  - the same complaint said again: the message resembles one of the last ``HISTORY_WINDOW``
    messages of the customer (character-bigram Dice >= 0.5), reports the same problem as one (发错,
    破损, 坏...), or shares a topic with one (发货, 退款, 快递...) and says "still" (还没, 又, 到底...);
    one earlier message weighs 0.3, two 0.5, three or more 0.6;
  - the customer says they asked again or waited long (问了三遍, 第三次问, 等了十天, 半个月了还没);
  - an ultimatum (不然我就…, 再不…我就…, 再这样我要…).

``evaluate`` measures precision, recall and F1 on labelled JSONL (``{"text", "angry"[, "history"]}``);
``python -m routing.detect tests/fixtures/routing/anger_eval.jsonl`` prints them.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.chinese import to_simplified

__all__ = [
    "ANGER_THRESHOLD",
    "HISTORY_WINDOW",
    "LEXICON_PATH",
    "AngerResult",
    "EvalReport",
    "anger_score",
    "evaluate",
    "human_request",
    "load_examples",
    "load_lexicon",
    "normalize",
]

ANGER_THRESHOLD = 0.5
HISTORY_WINDOW = 5
MAX_LENGTH = 2000
LEXICON_PATH = Path(__file__).resolve().parent / "data" / "anger_lexicon.tsv"

# --------------------------------------------------------------------------------------------------
# Normalisation

_INVISIBLE = dict.fromkeys([0x00AD, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF])
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
# Full-width forms NFKC leaves alone or that we want spelled one way.
_PUNCT = str.maketrans({"。": ".", "、": ",", "～": "~", "…": "...", "　": " "})


def normalize(text: object) -> str:
    """NFKC (full-width -> half-width), traditional -> simplified, invisible and control characters
    removed, whitespace collapsed, trimmed, at most ``MAX_LENGTH`` characters. Case is kept (shouting
    is a cue); callers lower-case for matching."""
    if not text:
        return ""
    if not isinstance(text, str):
        text = str(text)
    text = text[: MAX_LENGTH * 2].encode("utf-8", "ignore").decode("utf-8")
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_PUNCT)
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return to_simplified(text)[:MAX_LENGTH]


# --------------------------------------------------------------------------------------------------
# Human request

# 人工 followed by these is a thing, not a person: 人工智能, 人工费, 人工湖, 人工安装...
_RENGONG_NOT_PERSON = (
    "智能|智慧|费|成本|工资|价|湖|河|岛|降雨|增雨|草|合成|养殖|种植|培育|繁殖|呼吸|授精|受精|关节|晶体|耳蜗|心脏|"
    "骨|牙|钻|宝石|皮|革|毛|花|树|造|制|加工|安装|上门|清洗|拆|装配|组装|打磨|缝|刺绣|编织|挑选|筛选|检测|质检|分拣|"
    "包装|计算|翻译|标注|时|日"
)
# 真人 followed by these is about photos / sizes / shows, not a person to talk to.
_ZHENREN_NOT_PERSON = "实拍|拍|图|照|秀|版|试|视频|效果|模特|上身|穿|cs|手办|尺寸|大小|比例|发|娃|电影|游戏|动画|演"

_HUMAN_PATTERNS = [
    # 转人工, 找人工, 要个人工, 帮我转一下人工, 联系人工
    rf"(?:转|找|要|叫|接|换|切|请|联系|呼叫|召唤|来)(?:个|一个|一下|下|接|到|给|成)?人工(?!{_RENGONG_NOT_PERSON})",
    # 人工客服, 人工服务, 人工在吗, 有人工吗
    r"人工(?:客服|服务|坐席|座席|接待|回复|介入|处理|对话|沟通|聊|在吗|在不在|呢|吗|嘛)",
    # the whole message is 人工 (人工！, 人工人工, 人工啊, 请人工 谢谢)
    r"^(?:请|麻烦|我要)?(?:人工[啊呀吧了!.?,~ ]*)+(?:谢谢)?$",
    # 真人客服, 找真人, 是真人吗, 是不是真人, 有没有真人
    r"真人(?:客服|服务|回复|接待|在吗|在不在)",
    rf"(?:找|要|换|转|叫|来|跟|和|让|请)(?:个|一个|一下)?真人(?!{_ZHENREN_NOT_PERSON})",
    r"(?:是|有)(?:不是|没有)?真人(?:吗|嘛|么|啊|不|没|还是|$|[^\w])",
    # 找客服, 客服在吗, 客服呢, 有客服吗, 客服人呢, a message that is just 客服
    r"(?:找|叫|要|转|接|联系|呼叫|召唤)(?:一下|下|你们|你们的|你们家)?客服",
    r"客服(?:在吗|在不在|呢|人呢|人在吗|去哪了|去哪儿了|出来)",
    r"(?:有|有没有)(?:人工)?客服(?:吗|嘛|么|在|$)",
    r"^客服[啊呀!.?, ]*$",
    # 找你们领导, 叫经理出来, 让你们主管来
    r"(?:找|叫|要|让|请|喊)(?:你们|你们的|你们家|你家|你们店|店里)?(?:的)?(?:领导|经理|主管|负责人|老板|店长)",
    # not a robot
    r"(?:不要|别|不想|不跟|不和|不想跟|不想和)(?:跟|和|再跟|用|再用|再)?(?:机器人|自动回复)",
    r"机器人(?:听不懂|没用|别回|闭嘴|一边去|滚)",
    r"(?:是不是|是)机器人(?:吗|啊|吧|\?)",
    r"(?:不是|不要|别再)(?:用)?(?:机器人|自动回复)",
    # English
    r"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|the\s+|your\s+|some\s+)?"
    r"(?:human|person|real person|agent|representative|rep|operator|manager|supervisor|someone)\b",
    r"\b(?:transfer|connect|put)\s+(?:me\s+)?(?:to|through to|with)\s+(?:a\s+|an\s+)?"
    r"(?:human|person|real person|agent|representative|operator)\b",
    r"\b(?:want|need|get me|give me)\s+(?:a\s+|an\s+)?(?:human|real person|live agent|agent|representative|operator)\b",
    r"\b(?:human|live|real)\s+(?:agent|support|person|representative)\b",
    r"^(?:a\s+)?(?:human|agent|real person|operator|representative)(?:\s+please|\s+pls)?[!.?\s]*$",
    r"\b(?:not|no|stop)\s+(?:a\s+)?(?:bot|robot|machine)s?\b",
    r"\bare you a (?:bot|robot|human|real person)\b",
]
_HUMAN_RE = re.compile("|".join(f"(?:{p})" for p in _HUMAN_PATTERNS))


def human_request(text: str) -> bool:
    """True when the customer asks to talk to a person."""
    norm = normalize(text).lower()
    return bool(norm) and _HUMAN_RE.search(norm) is not None


# --------------------------------------------------------------------------------------------------
# Anger

_NEGATION = re.compile(
    # A-not-A questions (是不是, 会不会, 有没有) ask rather than negate: 不/没 after 是/会/想/要/能/有... is no cue.
    r"(?:并没有|并没|并不|从来没有|从来没|从来不|从没|从不|绝不|毫无|(?<![有])没有|(?<![有])没|(?<![是会想要能敢算用])"
    r"(?:不是|不会|不想|不打算|不准备|不用|不必|不太|不(?!要)))"
    r"(?:是|会|想|要|打算|准备|用|必|需要|太|很|怎么|那么|这么|有|给|给你们|给你|对你们|对你|对|去|再|算|敢|在|一点|"
    r"点儿|点|过|觉得|感到|感觉|生|的|也|都){0,3}$"
)
_INTENSIFIER = re.compile(
    r"(?:太|非常|真的|真是|真|到底|特别|超级|简直|根本|究竟|实在|极其|巨|好|很|十分|极度|严重|超|贼|最|这么|那么)"
)
_BLANK = "\u3007"
_RHETORICAL_END = re.compile(r"\w{0,8}?[吗嘛么](?!\w)")
# 不然我就…, 否则我会…, 再不…我就…, 再这样我要…
_ULTIMATUM = re.compile(r"(?:不然|否则|要不然|再不|再这样)[^,.!?;:~]{0,12}?(?:我就|我会|我要|我直接|我马上|就去)")
_NUM = r"[两二三四五六七八九十几好多少半\d]+"
# The customer says they already asked / waited: 问了三遍, 第三次问了, 催了好几次, 等了十天, 半个月了还没
_ASKED_AGAIN = re.compile(
    rf"(?:问|说|催|找|打|联系|反映|反馈|申请|解释)了?(?:有)?{_NUM}(?:遍|次)|第{_NUM}(?:次|遍)(?:问|说|催|找|联系|反映|反馈|申请|解释)"
)
_WAITED = re.compile(
    rf"等了{_NUM}(?:个)?(?:天|周|星期|礼拜|月)|{_NUM}(?:个)?(?:天|周|星期|礼拜|月)了?(?:还没|还不|都没|也没|还是没)"
)
_CLAUSE_BREAK = re.compile(r"[^\w]")
_ASCII_WORD = re.compile(r"[a-z0-9 ]+")

_ACRONYMS = frozenset(
    """SKU VIP USB LED LCD OLED APP PDF DIY NFC GPS WIFI HDMI EMS SF JD QQ ID OK PS PC TV AI XL XXL XXXL
    XS CM MM KG ML PVC ABS OEM DHL UPS FEDEX ASAP FAQ CEO PM AM OPPO VIVO HUAWEI XIAOMI NIKE ADIDAS APPLE
    SONY DIOR CHANEL GUCCI LV MAC SK II YSL UNIQLO ZARA HM IKEA BMW CPU GPU SSD RAM ROM""".split()
)

_STILL = re.compile(
    r"还没|还是没|还不|怎么还|依然|仍然|一直|又|到底|究竟|再次|重复|说了|问了|多少遍|几遍|几次|第[二三四五六七八九十两\d]+次"
)
_TOPICS = (
    "发货",
    "物流",
    "快递",
    "退款",
    "退货",
    "换货",
    "补发",
    "赔",
    "质量",
    "破损",
    "坏",
    "少发",
    "漏发",
    "错发",
    "回复",
    "售后",
    "订单",
    "单号",
    "到货",
    "签收",
    "客服",
)
# Problem reports: sharing one with an earlier message is the same complaint again, "still" or not.
_PROBLEMS = (
    "发错",
    "错发",
    "少发",
    "漏发",
    "破损",
    "坏",
    "质量问题",
    "没收到",
    "丢件",
    "丢了",
    "掉色",
    "开线",
    "过敏",
    "漏水",
    "不能用",
    "用不了",
    "假货",
)


@dataclass(frozen=True, slots=True)
class AngerResult:
    score: float
    is_angry: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Lexicon:
    weights: dict[str, float]
    pattern: re.Pattern[str] | None  # entries with a weight, longest first
    stop: re.Pattern[str] | None  # weight-0 stop phrases, blanked out before matching


def _entry_pattern(word: str) -> str:
    escaped = re.escape(word)
    if _ASCII_WORD.fullmatch(word):
        return rf"(?<![a-z0-9]){escaped}(?![a-z0-9])"
    if len(word) == 1:
        return rf"(?<!\w){escaped}(?!\w)"
    return escaped


@functools.cache
def load_lexicon(path: Path = LEXICON_PATH) -> _Lexicon:
    """Parse ``word<TAB>weight`` lines (``#`` comments and blank lines skipped). Cached per path."""
    weights: dict[str, float] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected word<TAB>weight")
        word = normalize(parts[0]).lower()
        weight = float(parts[1])
        if not word or not 0.0 <= weight < 1.0:
            raise ValueError(f"{path}:{lineno}: empty word or weight outside [0, 1)")
        weights[word] = weight

    def compile_(words: list[str]) -> re.Pattern[str] | None:
        ordered = sorted(words, key=lambda w: (-len(w), w))
        return re.compile("|".join(_entry_pattern(w) for w in ordered)) if ordered else None

    return _Lexicon(
        weights,
        compile_([w for w, weight in weights.items() if weight > 0.0]),
        compile_([w for w, weight in weights.items() if weight == 0.0]),
    )


def _clause_prefix(text: str, start: int, limit: int = 10) -> str:
    """The text of the clause before ``start`` (back to the last punctuation or space), at most ``limit`` chars."""
    prefix = text[max(0, start - limit) : start]
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(prefix)]
    return prefix[breaks[-1] :] if breaks else prefix


def _lexicon_cues(low: str, lexicon: _Lexicon) -> list[tuple[float, str]]:
    cues: list[tuple[float, str]] = []
    if lexicon.pattern is None:
        return cues
    if lexicon.stop is not None:
        # Same length, so offsets are kept; 〇 is a word character, so no clause break appears.
        low = lexicon.stop.sub(lambda m: _BLANK * len(m.group(0)), low)
    for match in lexicon.pattern.finditer(low):
        word = match.group(0)
        weight = lexicon.weights[word]
        prefix = _clause_prefix(low, match.start())
        negation = _NEGATION.search(prefix)
        # 这不是欺骗消费者吗 / 难道不是骗人吗: a rhetorical question affirms, it does not negate.
        rhetorical = (
            negation is not None
            and (negation.group(0).startswith("不是") or "难道" in prefix)
            and _RHETORICAL_END.match(low, match.end()) is not None
        )
        if negation and not rhetorical:
            cues.append((0.0, f"negated:{word}"))
            continue
        if _INTENSIFIER.search(prefix[-4:]):
            cues.append((1.0 - (1.0 - weight) ** 1.5, f"intensified:{word}"))
        else:
            cues.append((weight, f"lexicon:{word}"))
    return cues


def _punctuation_cue(low: str) -> tuple[float, str] | None:
    bang = max((len(m) for m in re.findall(r"!+", low)), default=0)
    quest = max((len(m) for m in re.findall(r"\?+", low)), default=0)
    mixed = re.search(r"\?!|!\?", low) is not None
    weight = 0.0
    if bang >= 3:
        weight = 0.35
    elif bang == 2:
        weight = 0.25
    if quest >= 3:
        weight = max(weight, 0.3)
    elif quest == 2:
        weight = max(weight, 0.2)
    if mixed or (bang >= 2 and quest >= 2):
        weight = max(weight + 0.1, 0.3)
    if weight <= 0.0:
        return None
    return weight, f"punctuation:!x{bang} ?x{quest}"


def _caps_cue(norm: str) -> tuple[float, str] | None:
    words = re.findall(r"[A-Za-z]+", norm)
    letters = sum(len(w) for w in words)
    if letters < 6:
        return None
    upper = sum(len(w) for w in words if w.isupper())
    shouted = [w for w in words if len(w) >= 3 and w.isupper() and w not in _ACRONYMS]
    if upper / letters >= 0.7 and len(shouted) >= 2:
        return 0.3, "caps:" + " ".join(shouted[:3])
    return None


def _bigrams(text: str) -> set[str]:
    chars = "".join(re.findall(r"\w", text))
    return {chars[i : i + 2] for i in range(len(chars) - 1)}


def _repeat_cue(low: str, history: Sequence[str]) -> tuple[float, str] | None:
    content = "".join(re.findall(r"\w", low))
    if len(content) < 4 or not history:
        return None
    mine = _bigrams(low)
    topics = {t for t in _TOPICS if t in low}
    problems = {p for p in _PROBLEMS if p in low}
    still = _STILL.search(low) is not None
    repeats = 0
    for previous in list(history)[-HISTORY_WINDOW:]:
        prev = normalize(previous).lower()
        if not prev:
            continue
        theirs = _bigrams(prev)
        dice = 2 * len(mine & theirs) / (len(mine) + len(theirs)) if mine and theirs else 0.0
        if dice >= 0.5 or any(p in prev for p in problems) or (still and any(t in prev for t in topics)):
            repeats += 1
    if repeats == 0:
        return None
    return (0.3, 0.5, 0.6)[min(repeats, 3) - 1], f"repeat:{repeats}"


def anger_score(text: str, history: Sequence[str] = ()) -> AngerResult:
    """Anger of ``text`` in 0..1 given the customer's recent earlier messages (oldest first)."""
    norm = normalize(text)
    if not norm:
        return AngerResult(0.0, False, ())
    low = norm.lower()
    cues = _lexicon_cues(low, load_lexicon())
    if _ASKED_AGAIN.search(low):
        cues.append((0.45, "asked-again"))
    if _ULTIMATUM.search(low):
        cues.append((0.45, "ultimatum"))
    if _WAITED.search(low):
        cues.append((0.35, "waited"))
    for extra in (_punctuation_cue(low), _caps_cue(norm), _repeat_cue(low, history or ())):
        if extra is not None:
            cues.append(extra)
    score = 1.0 - math.prod(1.0 - w for w, _ in cues)
    score = round(min(1.0, max(0.0, score)), 4)
    return AngerResult(score, score >= ANGER_THRESHOLD, tuple(reason for _, reason in cues))


# --------------------------------------------------------------------------------------------------
# Evaluation

Predictor = Callable[[str, Sequence[str]], bool]


@dataclass(frozen=True)
class EvalReport:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)

    def summary(self) -> str:
        n = self.tp + self.fp + self.fn + self.tn
        return (
            f"n={n} angry={self.tp + self.fn} precision={self.precision:.3f} recall={self.recall:.3f} "
            f"f1={self.f1:.3f} (tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn})"
        )


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """JSONL rows ``{"text": str, "angry": bool, "history": [str, ...] (optional)}``."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("angry"), bool):
            raise ValueError(f"{path}:{lineno}: need a string 'text' and a boolean 'angry'")
        rows.append(row)
    return rows


def _default_predict(text: str, history: Sequence[str]) -> bool:
    return anger_score(text, history).is_angry


def evaluate(
    examples: str | Path | Iterable[dict[str, Any]],
    predict: Predictor | None = None,
    *,
    verbose: bool = False,
) -> EvalReport:
    """Precision, recall and F1 of ``predict(text, history) -> angry?`` (default: ``anger_score``)."""
    rows = load_examples(examples) if isinstance(examples, str | Path) else list(examples)
    predict = predict or _default_predict
    tp = fp = fn = tn = 0
    false_pos: list[str] = []
    false_neg: list[str] = []
    for row in rows:
        got = bool(predict(row["text"], tuple(row.get("history") or ())))
        want = bool(row["angry"])
        if got and want:
            tp += 1
        elif got:
            fp += 1
            false_pos.append(row["text"])
        elif want:
            fn += 1
            false_neg.append(row["text"])
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    report = EvalReport(precision, recall, f1, tp, fp, fn, tn, false_pos, false_neg)
    if verbose:
        print(report.summary())
        for row in rows:
            if row["text"] in false_pos or row["text"] in false_neg:
                result = anger_score(row["text"], tuple(row.get("history") or ()))
                kind = "FP" if row["text"] in false_pos else "FN"
                print(f"  {kind} {result.score:.2f} {row['text']}  {' '.join(result.reasons)}")
    return report


if __name__ == "__main__":  # python -m routing.detect [path/to/eval.jsonl]
    evaluate(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/routing/anger_eval.jsonl", verbose=True)
