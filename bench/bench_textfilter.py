"""Benchmark of core.textfilter on one core: build time and scanned messages per second.

    .venv/bin/python bench/bench_textfilter.py [--words 10000] [--messages 10000] [--seed 7] [--rounds 3]

Words: generated, 2-6 common Chinese characters, some mixed with Latin (``加v``, ``vx号``, ``qq群``) and
some pure Latin. Messages: 20-200 characters built from customer-service phrases, filler, emoji,
full-width and traditional characters; about a quarter carry a list word, half of those with
separators inserted (``微*信``, ``微 😀 信``). Deterministic for a given seed. The process is pinned to
one CPU when the OS allows it. Goal: >= 1,000 messages/s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.textfilter import Action, Matcher, Word, normalize  # noqa: E402

COMMON = (
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后"
    "小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长"
    "知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最"
    "间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市"
    "眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计"
    "微号群钱付款退货快递订单客服物流包邮质量价格优惠红包链接地址电话衣服鞋子颜色尺码"
)
TRADITIONAL = "微信號購買價錢發貨聯繫們後裡說話質優惠紅包鏈結電話寶貝"
LATIN_TOKENS = ["v", "vx", "wx", "qq", "vip", "app", "id", "tb", "pdd", "dy", "ks", "sb", "nmsl", "url"]
PHRASES = [
    "你好，请问这个还有货吗？",
    "我的订单号是",
    "什么时候发货呀",
    "快递到哪里了，三天了还没到",
    "可以便宜一点吗",
    "这件衣服有没有大一码的",
    "我要退货，质量太差了",
    "亲，麻烦帮我改一下地址",
    "收到了，谢谢客服！",
    "优惠券怎么用不了？",
    "颜色和图片不一样啊",
    "能开发票吗",
    "请问周末发货吗",
    "Hi, is this item still available?",
    "order 20240612 has not arrived yet",
    "好的👌",
    "😀😀😀",
    "在吗在吗",
]
SEPARATORS = ["*", " ", "  ", "😀", "-", ".", "｜", "丶", "\u200b", "～", "、"]
EMOJI = ["😀", "👍", "🙏", "❤️", "🎁", "👨\u200d👩\u200d👧"]
ACTIONS = [Action.FLAG] * 5 + [Action.MASK] * 3 + [Action.HANDOFF] + [Action.BLOCK]
CATEGORIES = ["contact", "abuse", "politics", "ads", "competitor", "adult"]


def make_words(rng: random.Random, count: int) -> list[Word]:
    """Random words, minus those a curator would never list: words found inside the everyday phrases."""
    everyday = "\n".join(PHRASES).lower()
    words: list[Word] = []
    while len(words) < count:
        roll = rng.random()
        han = "".join(rng.choice(COMMON) for _ in range(rng.randint(2, 6)))
        if roll < 0.80:
            text = han
        elif roll < 0.95:
            latin = rng.choice(LATIN_TOKENS)
            text = latin + han[:2] if rng.random() < 0.5 else han[:3] + latin
        else:
            text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
        if text not in everyday:
            words.append(Word(text, rng.choice(CATEGORIES), rng.choice(ACTIONS)))
    return words


def disguise(rng: random.Random, word: str) -> str:
    """Insert separators between the characters of a word, sometimes widen or traditionalise it."""
    out = []
    for i, ch in enumerate(word):
        if i and rng.random() < 0.7:
            out.append(rng.choice(SEPARATORS))
        if ch.isascii() and ch.isalpha() and rng.random() < 0.5:
            ch = chr(ord(ch.upper()) + 0xFEE0)  # full width capital
        out.append(ch)
    return "".join(out)


def make_messages(rng: random.Random, count: int, words: list[Word]) -> list[str]:
    messages = []
    for _ in range(count):
        target = rng.randint(20, 200)
        parts: list[str] = []
        size = 0
        while size < target:
            roll = rng.random()
            if roll < 0.75:
                piece = rng.choice(PHRASES)
            elif roll < 0.85:
                piece = "".join(rng.choice(COMMON) for _ in range(rng.randint(3, 12))) + rng.choice("，。！？ ")
            elif roll < 0.93:
                piece = rng.choice(EMOJI)
            else:
                piece = "".join(rng.choice(TRADITIONAL) for _ in range(rng.randint(2, 6)))
            parts.append(piece)
            size += len(piece)
        kind = rng.random()
        if kind < 0.25:
            word = rng.choice(words).text
            parts.insert(rng.randint(0, len(parts)), disguise(rng, word) if kind < 0.125 else word)
        messages.append("".join(parts)[: max(target, 20) + 12])
    return messages


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds after the cold one")
    args = parser.parse_args()

    print(f"core.textfilter benchmark: {pin_one_core()}, Python {sys.version.split()[0]}")
    rng = random.Random(args.seed)
    words = make_words(rng, args.words)
    messages = make_messages(rng, args.messages, words)
    chars = sum(len(m) for m in messages)
    print(f"{len(words)} words, {len(messages)} messages, {chars / len(messages):.0f} chars/message on average")

    # Cold: the first scans fill the per-code-point normalisation table (and load OpenCC).
    started = time.perf_counter()
    matcher = Matcher.build(words)
    build = time.perf_counter() - started
    print(f"build: {build * 1000:.0f} ms ({matcher.pattern_count} patterns, {len(matcher.words)} words kept)")

    def run(m: Matcher) -> tuple[float, int, int]:
        hit_messages = blocked = 0
        t0 = time.perf_counter()
        for text in messages:
            result = m.scan(text)
            if result.hits:
                hit_messages += 1
                blocked += result.blocked
        return time.perf_counter() - t0, hit_messages, blocked

    elapsed, hit_messages, blocked = run(matcher)
    print(
        f"scan cold: {len(messages) / elapsed:,.0f} messages/s ({elapsed * 1000:.0f} ms); "
        f"{hit_messages} messages with hits ({hit_messages / len(messages):.0%}), {blocked} blocked"
    )
    best = min(run(matcher)[0] for _ in range(max(args.rounds, 1)))
    print(
        f"scan warm: {len(messages) / best:,.0f} messages/s (best of {args.rounds}), {chars / best / 1e6:.1f} M chars/s"
    )

    clean = [m for m in messages if not matcher.scan(m).hits]
    t0 = time.perf_counter()
    for text in clean:
        normalize(text)
    norm_rate = len(clean) / (time.perf_counter() - t0)
    print(f"normalise only (messages without hits): {norm_rate:,.0f} messages/s")

    try:
        started = time.perf_counter()
        pinyin = Matcher.build(words, pinyin_initials=True)
        pinyin_build = time.perf_counter() - started
    except ImportError:
        print("pinyin initials: skipped (pypinyin not installed)")
        return
    elapsed, hit_messages, _ = run(pinyin)
    print(
        f"pinyin initials: build {pinyin_build * 1000:.0f} ms ({pinyin.pattern_count} patterns), "
        f"scan {len(messages) / elapsed:,.0f} messages/s, {hit_messages / len(messages):.0%} messages with hits"
    )


if __name__ == "__main__":
    main()
