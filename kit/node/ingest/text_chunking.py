"""neural-search's ``text_chunking`` processor (fixed_token_length, delimiter, fixed_char_length)."""

from __future__ import annotations

import re
from typing import Any, Mapping

from kit.node.errors import unsupported
from kit.node.ingest.document import IngestDocument, iae, ise, java_str
from kit.node.ingest.embedding import validate_map_value
from kit.node.ingest.processor import Config, ExecContext, Processor

__all__ = ["TextChunkingProcessor", "standard_token_offsets"]


_CHUNK_ALGORITHMS = ("fixed_token_length", "delimiter", "fixed_char_length")


_WORD_TOKENIZERS = ("standard", "letter", "lowercase", "whitespace", "uax_url_email", "classic", "thai")


_OUR_TOKENIZERS = ("standard", "letter", "lowercase", "whitespace")


_MID_LETTER = set(":·'’.\u2018\u2019\u2024\ufe52\uff07\uff0e\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a")


_MID_NUM = set(",;'’.\u066c\ufe50\ufe54\uff0c\uff1b\u2024\ufe52\uff07\uff0e\u2018\u2019")


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x3040 <= o <= 0x309F
            or 0x20000 <= o <= 0x2A6DF or 0xF900 <= o <= 0xFAFF)


def _word_char(ch: str) -> bool:
    return (ch.isalnum() or ch == "_") and not _is_han(ch)


def standard_token_offsets(text: str) -> list[tuple[int, int]]:
    """Token offsets of Lucene's StandardTokenizer (UAX#29 word breaks) for common scripts.

    Letters/digits/underscore runs form a token; ``'`` ``.`` ``:`` join letters (``can't``, ``U.S``) and
    ``,`` ``;`` ``.`` ``'`` join digits (``7.10.2``, ``1,000``); Han ideographs and hiragana are one
    token each. Thai word segmentation and emoji sequences are not modelled.
    """
    out: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if _is_han(ch):
            out.append((i, i + 1))
            i += 1
            continue
        if not _word_char(ch):
            i += 1
            continue
        start = i
        i += 1
        while i < n:
            c = text[i]
            if _word_char(c):
                i += 1
                continue
            if i + 1 < n and _word_char(text[i + 1]):
                prev, nxt = text[i - 1], text[i + 1]
                if c in _MID_LETTER and prev.isalpha() and nxt.isalpha():
                    i += 1
                    continue
                if c in _MID_NUM and prev.isdigit() and nxt.isdigit():
                    i += 1
                    continue
            break
        out.append((start, i))
    return out


def _token_offsets(text: str, tokenizer: str) -> list[tuple[int, int]]:
    if tokenizer == "standard":
        return standard_token_offsets(text)
    pattern = r"\S+" if tokenizer == "whitespace" else r"[^\W\d_]+"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


def _chunk_int(params: Mapping[str, Any], name: str, default: int, positive: bool = False) -> int:
    if name not in params:
        return default
    raw = params[name]
    try:
        if isinstance(raw, bool) or isinstance(raw, float):
            raise ValueError
        value = int(str(raw), 0) if isinstance(raw, str) and str(raw).lower().startswith("0x") else int(str(raw))
    except ValueError:
        raise iae(f"Parameter [{name}] must be of java.lang.Integer type") from None
    if positive and value <= 0:
        raise iae(f"Parameter [{name}] must be positive.")
    return value


def _chunk_float(params: Mapping[str, Any], name: str, default: float) -> float:
    if name not in params:
        return default
    try:
        if isinstance(params[name], bool):
            raise ValueError
        return float(str(params[name]))
    except ValueError:
        raise iae(f"Parameter [{name}] must be of java.lang.Double type") from None


def _chunk_str(params: Mapping[str, Any], name: str, default: str) -> str:
    if name not in params:
        return default
    value = params[name]
    if not isinstance(value, str):
        raise iae(f"Parameter [{name}] must be of java.lang.String type")
    if value == "":
        raise iae(f"Parameter [{name}] should not be empty.")
    return value


class TextChunkingProcessor(Processor):
    type = "text_chunking"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field_map = c.mapping("field_map") or {}
        algorithm = c.mapping("algorithm") or {}
        self.ignore_missing = c.boolean("ignore_missing", False)
        if len(algorithm) > 1:
            raise iae("Unable to create text_chunking processor as [algorithm] contains multiple algorithms")
        name, params = next(iter(algorithm.items())) if algorithm else ("fixed_token_length", {})
        if algorithm and not isinstance(params, dict):
            raise iae(f"Unable to create text_chunking processor as parameters for [{name}] algorithm must be an object")
        if name not in _CHUNK_ALGORITHMS:
            raise iae(f"Chunking algorithm [{name}] is not supported. Supported chunking algorithms are "
                      f"[{', '.join(_CHUNK_ALGORITHMS)}]")
        self.algorithm = name
        self.max_chunk_limit = _chunk_int(params, "max_chunk_limit", 100)
        if self.max_chunk_limit <= 0 and self.max_chunk_limit != -1:
            raise iae("Parameter [max_chunk_limit] must be positive or -1 to disable this parameter")
        if name == "fixed_token_length":
            self.limit = _chunk_int(params, "token_limit", 384, positive=True)
            self.overlap = _chunk_float(params, "overlap_rate", 0.0)
            self.tokenizer = _chunk_str(params, "tokenizer", "standard")
            if not 0.0 <= self.overlap <= 0.5:
                raise iae("Parameter [overlap_rate] must be between 0.0 and 0.5")
            if self.tokenizer not in _WORD_TOKENIZERS:
                raise iae(f"Tokenizer [{self.tokenizer}] is not supported for [fixed_token_length] algorithm. "
                          f"Supported tokenizers are [{', '.join(_WORD_TOKENIZERS)}]")
            if self.tokenizer not in _OUR_TOKENIZERS:
                raise unsupported(f"text_chunking tokenizer [{self.tokenizer}]")
        elif name == "fixed_char_length":
            self.limit = _chunk_int(params, "char_limit", 2048, positive=True)
            self.overlap = _chunk_float(params, "overlap_rate", 0.0)
            if not 0.0 <= self.overlap <= 0.5:
                raise iae(f"Parameter [overlap_rate] must be between 0.0 and 0.5, but was {java_str(self.overlap)}")
        else:
            self.delimiter = _chunk_str(params, "delimiter", "\n\n")

    # ---- algorithms (runtime: remaining max_chunk_limit and strings still to chunk)

    @staticmethod
    def _over(size: int, limit: int, pending: int) -> bool:
        return limit != -1 and size + pending >= limit

    def _chunk(self, content: str, rt: dict[str, int], max_tokens: int) -> list[str]:
        out: list[str] = []
        limit, pending = rt["limit"], rt["pending"]
        if self.algorithm == "delimiter":
            start = 0
            pos = content.find(self.delimiter)
            while pos != -1:
                if self._over(len(out), limit, pending):
                    break
                end = pos + len(self.delimiter)
                out.append(content[start:end])
                start = end
                pos = content.find(self.delimiter, start)
            if start < len(content):
                out.append(content[start:])
        elif self.algorithm == "fixed_char_length":
            start = 0
            step = self.limit - int(self.limit * self.overlap)
            while start < len(content):
                if self._over(len(out), limit, pending):
                    out.append(content[start:])
                    break
                if start + self.limit >= len(content):
                    out.append(content[start:])
                    break
                out.append(content[start:start + self.limit])
                start += step
        else:
            tokens = _token_offsets(content, self.tokenizer)
            if len(tokens) > max_tokens:
                raise ise(f"analyzer {self.tokenizer} throws exception: The number of tokens produced by calling "
                          f"_analyze has exceeded the allowed maximum of [{max_tokens}]. This limit can be set by "
                          "changing the [index.analyze.max_token_count] index level setting.")
            i = 0
            overlap = int(self.limit * self.overlap)
            while i < len(tokens):
                begin = 0 if i == 0 else tokens[i][0]
                if self._over(len(out), limit, pending):
                    out.append(content[begin:])
                    break
                if i + self.limit >= len(tokens):
                    out.append(content[begin:])
                    break
                out.append(content[begin:tokens[i + self.limit][0]])
                i += self.limit - overlap
        return out

    def _chunk_string(self, content: str, rt: dict[str, int], max_tokens: int) -> list[str]:
        if content == "":
            return []
        result = self._chunk(content, rt, max_tokens)
        rt["pending"] -= 1
        if rt["limit"] != -1:
            rt["limit"] -= len(result)
        return result

    @staticmethod
    def _is_str_list(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    def _count(self, node: dict[str, Any], fmap: Mapping[str, Any]) -> int:
        n = 0
        for key, target in fmap.items():
            value = node.get(key)
            if isinstance(target, dict):
                items = value if isinstance(value, list) else [value]
                n += sum(self._count(v, target) for v in items if isinstance(v, dict))
            elif isinstance(value, str):
                n += 1 if value else 0
            elif self._is_str_list(value):
                n += sum(1 for x in value if x)
        return n

    def _apply(self, node: dict[str, Any], fmap: Mapping[str, Any], rt: dict[str, int], max_tokens: int) -> None:
        for key, target in fmap.items():
            value = node.get(key)
            if isinstance(target, dict):
                items = value if isinstance(value, list) else [value]
                for v in items:
                    if isinstance(v, dict):
                        self._apply(v, target, rt, max_tokens)
                continue
            if self.ignore_missing and value is None:
                continue
            result: list[str] = []
            if isinstance(value, str):
                if value.strip():
                    result = self._chunk_string(value, rt, max_tokens)
            elif self._is_str_list(value):
                for item in value:
                    result.extend(self._chunk_string(item, rt, max_tokens))
            node[str(target)] = result

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        validate_map_value("field_map", doc.data, self.field_map, 1)
        max_tokens = 10000
        engine = ctx.service.engine
        state = getattr(engine, "indices", {}).get(doc.index) if engine is not None and doc.index else None
        if state is not None:
            setting = getattr(state, "settings", {}).get("index.analyze.max_token_count")
            if setting is not None:
                max_tokens = int(setting)
        rt = {"limit": self.max_chunk_limit, "pending": self._count(doc.data, self.field_map)}
        self._apply(doc.data, self.field_map, rt, max_tokens)
        return doc
