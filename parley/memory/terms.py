"""Words for BM25: jieba segments Chinese, Snowball stems English, both lower-cased.

The same function cuts documents and queries, so they meet on the same terms.
"""

from __future__ import annotations

import functools
import logging
import re

_KEEP = re.compile(r"[0-9A-Za-z\u00c0-\u024f\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"^[a-z\u00c0-\u024f]+$")
STOPWORDS = frozenset(
    "的 了 是 在 和 与 或 及 也 都 就 而 着 之 其 这 那 有 为 以 于 被 把 对 从 到 吗 呢 吧 啊 个 中 上 下 一 不 "
    "a an the of to in on at for by with and or is are was were be been being it its this that these those as "
    "from into than then there their they we you he she his her our your what which who whom how when where why "
    "do does did not no can could would should will shall may might must".split()
)


@functools.cache
def _jieba():  # noqa: ANN202 - the jieba module, loaded on first use (its dictionary takes a second)
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@functools.cache
def _stemmer():  # noqa: ANN202
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def terms(text: str) -> list[str]:
    out = []
    stem = _stemmer().stemWord
    for token in _jieba().lcut_for_search(text.lower()):
        token = token.strip()
        if not token or token in STOPWORDS or not _KEEP.search(token):
            continue
        out.append(stem(token) if _LATIN.match(token) else token)
    return out
