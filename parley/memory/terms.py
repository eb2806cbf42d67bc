"""Words for BM25: jieba segments Chinese (rjieba, its compiled port, when installed), Snowball
stems English, both lower-cased.

The same function cuts documents and queries, so they meet on the same terms. Stopwords are
function words and the words questions are made of (怎么, 多少, 什么, how, what…): a passage
never answers with them, so in a query they only make unrelated passages look alike.

``grams`` breaks words into smaller pieces for a second, typo-tolerant index: Chinese words
into their characters (a mistyped character leaves the others matching) and longer English
words into boundary-marked character trigrams (``#vacaton#`` still shares most trigrams with
``#vacat#``).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from typing import Any

_KEEP = re.compile(r"[0-9A-Za-z\u00c0-\u024f\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"^[a-z\u00c0-\u024f]+$")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_CHAR = re.compile(r"[a-z\u00c0-\u024f]")

_CHINESE = (
    # function words
    "的 了 是 在 和 与 或 及 也 都 就 而 着 之 其 这 那 有 为 以 于 被 把 对 从 到 个 中 上 下 一 不 "
    "还 还是 又 再 得 地 过 给 让 跟 比 向 等 一下 我 我们 你 你们 您 他 她 它 他们 她们 自己 "
    # the words of a question
    "吗 呢 吧 啊 么 嘛 呀 哦 哈 请问 请 想 想要 要 会 能 能否 可以 可否 是否 需要 应该 该 "
    "怎 怎么 怎么办 怎样 怎么样 如何 咋 咋办 啥 什么 什么样 多少 几 几个 几天 几次 几年 多久 多长 "
    "多大 多长时间 哪 哪些 哪里 哪儿 哪个 哪种 谁 为什么 为何 没 没有 有没有 是不是 能不能 可不可以 要不要"
)
_ENGLISH = (
    "a about above after again against all also am an and any are as at be because been before being "
    "below between both but by can could did do does doing down during each few for from further get "
    "gets got had has have having he her here hers herself him himself his how i if in into is it its "
    "itself just may me might more most much many must my myself no nor not now of off on once only or "
    "other our ours ourselves out over own please same shall she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with would you your yours yourself yourselves"
)
STOPWORDS = frozenset(_CHINESE.split() + _ENGLISH.split())


@functools.cache
def _jieba() -> Any:  # the jieba module, loaded on first use (its dictionary takes a second)
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@functools.cache
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


# jieba's own split of a run of letters, digits and signs it has no word for ("2.4km" → "2.4", "km").
_ALNUM_RUN = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")
_JIEBA_HAN = re.compile("[\u4e00-\u9fd5]")


@functools.cache
def _segment() -> Any:  # the fastest segmenter installed, as a function of a text
    try:
        import rjieba
    except ImportError:
        return None
    return rjieba.cut


def cut_for_search(text: str) -> list[str]:
    """jieba's ``lcut_for_search``: its words, and before each longer word the dictionary words
    of two and three characters inside it.

    The words come from rjieba (jieba's algorithm and dictionary, compiled: ~3× faster on a
    Chinese paragraph, the whole of the segmentation's share of ingestion) when it is installed.
    It keeps a run like "2.4km" or "text-align" whole where jieba splits it; split the same way,
    the terms agree with jieba's on 15,826 of the 15,828 texts of bench/retrieval.py's three
    sets (the other two differ by one word each)."""
    jieba = _jieba()
    cut = _segment()
    if cut is None:
        words: list[str] = jieba.lcut_for_search(text)
        return words
    known = jieba.dt.FREQ
    out: list[str] = []
    for word in cut(text, True):
        parts = [word] if len(word) < 2 or _JIEBA_HAN.search(word) else [p for p in _ALNUM_RUN.split(word) if p]
        for w in parts:
            if len(w) > 2:
                out.extend(w[i : i + 2] for i in range(len(w) - 1) if known.get(w[i : i + 2]))
            if len(w) > 3:
                out.extend(w[i : i + 3] for i in range(len(w) - 2) if known.get(w[i : i + 3]))
            out.append(w)
    return out


def terms(text: str, document: bool = False) -> list[str]:
    """A text's BM25 terms; ``document`` for a chunk being indexed rather than a query."""
    out = []
    stem = _stemmer().stemWord
    known = _jieba().dt.FREQ
    for token in cut_for_search(text.lower()):
        token = token.strip()
        if not token or token in STOPWORDS or not _KEEP.search(token):
            continue
        out.append(stem(token) if _LATIN.match(token) else token)
        if document and len(token) > 1 and _HAN.search(token) and not known.get(token):
            # A word jieba's HMM made up ("假为" out of "年假为每年") may hide a word a query
            # asks for: index its characters too. Queries keep their made-up words as they are.
            out.extend(ch for ch in token if _HAN.match(ch) and ch not in STOPWORDS)
    return out


def grams(words: Iterable[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if _HAN.search(word):
            out.extend(ch for ch in word if _HAN.match(ch))
        elif len(word) > 3 and _LATIN.match(word):
            padded = f"#{word}#"
            out.extend(padded[i : i + 3] for i in range(len(padded) - 2))
        else:
            out.append(word)  # numbers, short words and mixed tokens stay whole
    return out


def script_of(term: str) -> int:
    """0 for Chinese, 1 for Latin-script words, 2 for the rest (numbers): what a chunk can contain."""
    if _HAN.search(term):
        return 0
    return 1 if _LATIN_CHAR.search(term) else 2


@functools.cache
def stored_stopwords() -> frozenset[str]:
    """Stopwords as they look once stored: English ones are stemmed on the way in (see
    ``terms``). Made on first need: Snowball's stemmers hold 3 MB that a worker which never
    searches a knowledge base does not load."""
    return STOPWORDS | frozenset(_stemmer().stemWord(w) for w in _ENGLISH.split())
