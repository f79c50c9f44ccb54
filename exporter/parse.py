"""Parse a Prometheus text exposition (format 0.0.4) into metric families, fast.

``parse`` gives exactly the families and samples that ``prometheus_client.parser`` gives (the
same family boundaries, the counter ``_total`` munging, untyped singletons), but only for the
families it is asked for: lines of other families are skipped after reading their name. It
handles the common shape of a line itself; anything unusual (escapes, quoted names, odd spacing,
exemplars, bad values) makes it hand the whole payload to the library parser rather than guess.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter

from prometheus_client.openmetrics.parser import text_string_to_metric_families as _openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as _text_families

Labels = dict[str, str]
Sample = tuple[str, Labels, float, float | None]  # (sample name, labels, value, timestamp in seconds)


# Per entry, beyond the text it keeps (bytes; tracemalloc on CPython 3.11, rounded up): a
# skipped series (key string, dict slot, tuple), a kept one (its label dict and interned values
# too), a decoded comment line, a compiled layout per line of its payload.
SKIPPED_SERIES_COST = 192
KEPT_SERIES_COST = 512
COMMENT_COST = 320
LAYOUT_LINE_COST = 128
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


class SeriesCache(dict[str, tuple[str, "Labels | None"]]):
    """Across scrapes: the text of a sample line before its value -> (sample name, labels, or None
    for a family that was skipped). Engines repeat their series every scrape with new values
    only, so a known series costs a dict lookup and a float(); Prometheus' scrape cache does the
    same. The mapping depends on the line alone, so targets of one engine share a cache (replicas
    of a model repeat each other's series). The label dicts are shared: never mutate them.

    Bounded in entries and in bytes: when either is over after a parse, it starts over (series
    churn: new label values every scrape). ``bytes`` is an estimate of what it holds, kept as
    entries are added (see the *_COST constants: what tracemalloc measured per entry beyond the
    text, rounded up): a skipped series holds its line's head once, a kept one twice (the head
    and its label values), a comment line twice, a shared layout its payload's text once. It can
    exceed ``max_bytes`` by one payload's worth, added by the parse that goes over."""

    def __init__(self, max_entries: int = 200_000, max_bytes: int = DEFAULT_CACHE_BYTES):
        super().__init__()
        self.max_entries = max_entries  # then start over: bounded memory under series churn
        self.max_bytes = max_bytes
        self.bytes = 0
        self.comments: dict[str, tuple[str, str, str, tuple[str, ...]]] = {}  # HELP/TYPE lines, decoded
        self.layouts: dict[tuple, tuple] = {}  # compiled layouts (see Layout), shared by identical payloads
        self.layout_bytes = 0  # the part of ``bytes`` that ``layouts`` holds

    @property
    def over(self) -> bool:
        return len(self) > self.max_entries or len(self.comments) > self.max_entries or self.bytes > self.max_bytes

    def clear(self) -> None:
        super().clear()
        self.comments.clear()
        self.layouts.clear()
        self.bytes = self.layout_bytes = 0


class Layout:
    """One target's last payload, cut at its sample values. Engines print the same series in the
    same order every scrape, so when the text between the values is unchanged, the families are
    the last scrape's with new values: one C-level split and a float() per sample replace the
    per-line work. Built only from a payload the line parser read, and only when every kept
    sample maps back to its line; anything else (a new series, a changed HELP or TYPE line, a
    timestamp, a value that is not a plain number) falls back to the line parser."""

    __slots__ = ("wanted", "pieces", "comment_slots", "comment_values", "sample_slots", "kept", "families",
                 "plans", "values", "hits", "skip")

    def __init__(self) -> None:
        self.wanted: Collection[str] | None = None
        self.pieces: list[str] | None = None  # the text between values: compared whole
        # The kept samples' values, in family order, when the last parse was read through this
        # layout (None when the line parser read it): what exporter.program's plans compute from.
        self.values: tuple[float, ...] | None = None
        self.plans: dict = {}  # normalize planned for this layout (exporter.program)
        self.hits = 0  # scrapes read through this layout since it was built
        self.skip = 0  # scrapes left before trying to build again (a payload that never repeats)


LAYOUT_RETRY_SCRAPES = 10  # scrapes a target's payload goes without a layout after one failed

# The last space-separated token of every line: a sample's value (or a comment's last word).
_SPLIT_VALUES = re.compile(r" ([^ \n]*)(?=\n|\Z)").split


def _picker(indices: list[int]):
    """A function from a sequence to the tuple of its items at ``indices`` (itemgetter, always a tuple)."""
    if not indices:
        return lambda _values: ()
    if len(indices) == 1:
        index = indices[0]
        return lambda values: (values[index],)
    return itemgetter(*indices)


def _from_layout(text: str, layout: Layout) -> tuple[float, ...] | None:
    """The kept samples' values, in family order, when ``text`` has the layout's text between values."""
    parts = _SPLIT_VALUES(text)
    if parts[0::2] != layout.pieces:
        return None
    values = parts[1::2]
    if layout.comment_slots(values) != layout.comment_values:
        return None
    raw = layout.sample_slots(values)
    if "_" in "".join(raw):  # float() accepts 1_000; the exposition format does not
        return None
    try:
        numbers = list(map(float, raw))
    except ValueError:
        return None
    return layout.kept(numbers)


def values_through_layout(text: str, wanted: Collection[str] | None, layout: Layout) -> tuple[float, ...] | None:
    """The values of ``text``'s kept samples, in family order, when its text between values is the
    layout's (its families are then ``layout_families(layout, values)``); else None, and the next
    ``parse`` reads the payload with the line parser and remembers its layout."""
    layout.values = None
    if layout.wanted is not wanted:
        layout.wanted, layout.pieces = wanted, None
    if layout.pieces is None:
        return None
    values = _from_layout(text, layout)
    if values is None:
        if layout.hits == 0:
            layout.skip = LAYOUT_RETRY_SCRAPES  # built, never matched: it changes between values
        layout.pieces = None
        return None
    layout.hits += 1
    layout.values = values
    return values


def layout_families(layout: Layout, values: tuple[float, ...]) -> list[Family]:
    return [Family(name, typ, doc, list(zip(names, labels, values[start:end], repeat(None))), duplicates)
            for name, typ, doc, duplicates, names, labels, start, end in layout.families]


def _build_layout(text: str, families: list[Family], series: dict, layout: Layout) -> None:
    """Remember ``text``'s layout if every kept sample of ``families`` maps to one of its lines."""
    layout.pieces = None
    parts = _SPLIT_VALUES(text)
    pieces, values = parts[0::2], parts[1::2]
    comment_slots, sample_slots, kept_positions = [], [], []
    samples = [s for f in families for s in f.samples]
    next_sample = 0
    for slot, (piece, value) in enumerate(zip(pieces, values)):
        line = (piece.rpartition("\n")[2] + " " + value).strip()
        if line.startswith("#"):
            comment_slots.append(slot)
            continue
        if not value or not line:
            return
        known = series.get(line.rpartition(" ")[0])
        if known is None:
            return  # a line the parser did not cache (a timestamp, an untyped singleton): no layout
        if known[1] is not None:  # a sample of a kept family, in payload order
            if next_sample >= len(samples):
                return
            sample = samples[next_sample]
            if sample[1] is not known[1] or sample[3] is not None or not _same_number(sample[2], value):
                return
            kept_positions.append(len(sample_slots))
            next_sample += 1
        sample_slots.append(slot)
    if next_sample != len(samples):
        return
    table, start = [], 0
    for f in families:
        end = start + len(f.samples)
        table.append((f.name, f.type, f.help, f.duplicates, [s[0] for s in f.samples], [s[1] for s in f.samples],
                      start, end))
        start = end
    pick_comments = _picker(comment_slots)
    compiled = (pieces, pick_comments, pick_comments(values), _picker(sample_slots), _picker(kept_positions), table,
                {})
    # Replicas of a model print the same series: their targets share one compiled layout.
    shared = getattr(series, "layouts", None)
    if shared is not None:
        if len(shared) > 1000:  # bounded, like the series cache: distinct layouts per engine
            shared.clear()
            series.bytes -= series.layout_bytes
            series.layout_bytes = 0
        wanted = None if layout.wanted is None else frozenset(layout.wanted)
        key = (wanted, tuple(pieces), compiled[2])
        if key not in shared:
            cost = len(text) + LAYOUT_LINE_COST * len(pieces)
            series.bytes += cost
            series.layout_bytes += cost
        compiled = shared.setdefault(key, compiled)
    (layout.pieces, layout.comment_slots, layout.comment_values, layout.sample_slots, layout.kept,
     layout.families, layout.plans) = compiled
    layout.hits = 0


def _same_number(parsed: float, token: str) -> bool:
    try:
        value = float(token)
    except ValueError:
        return False
    return value == parsed or (value != value and parsed != parsed)  # NaN equals NaN here


class ParseError(ValueError):
    """The payload is not a valid exposition."""


@dataclass(slots=True)
class Family:
    name: str  # as prometheus_client names it: counters without _total
    type: str  # counter, gauge, histogram, summary, unknown, ...
    help: str
    samples: list[Sample]
    duplicates: int = 0  # samples repeating an earlier series of the family (the library keeps both)


class _Unusual(Exception):
    """A line outside the fast path's subset of the format."""


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NAME_PREFIX = _METRIC_NAME.match
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
# name, optional {labels}, one space, value, optionally one space and a timestamp.
_SAMPLE = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:{_LABEL}(?:,{_LABEL})*,?)?)\}})? ([^ \t]+)(?: ([^ \t]+))?").fullmatch
_LABEL_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"').findall
_COMMENT_SPLIT = re.compile(r"[ \t\n\r\x0b\x0c]+").split  # the library's whitespace set
_HELP_ESCAPES = re.compile(r"\\[\\n]")
_TYPES = frozenset({"counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset"})
_ALLOWED_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}


def parse(text: str, wanted: Collection[str] | None = None, *, openmetrics: bool = False,
          series: dict | None = None, layout: Layout | None = None) -> list[Family]:
    """Families of ``text`` in payload order; only those named in ``wanted`` (None: all).
    ``series`` is the cache of known series (see SeriesCache); it is kept bounded. ``layout`` is
    the target's own memory of its last payload (see Layout); it needs ``series``.

    Raises ParseError when the payload is not a valid exposition.
    """
    if layout is not None:
        layout.values = None
    if not openmetrics:
        if layout is not None and series is not None:
            values = values_through_layout(text, wanted, layout)
            if values is not None:
                return layout_families(layout, values)
        try:
            families = _parse_fast(text, wanted, series)
        except _Unusual:
            families = None
        if isinstance(series, SeriesCache):
            if series.over:
                series.clear()  # series churn (new label values every scrape): start over
        elif series is not None and len(series) > 2 * text.count("\n") + 1000:
            series.clear()
        if families is not None:
            if layout is not None and series is not None:
                if layout.skip:
                    layout.skip -= 1
                else:
                    _build_layout(text, families, series, layout)
                    if layout.pieces is None:
                        layout.skip = LAYOUT_RETRY_SCRAPES  # no stable layout; look again later
            return families
    return _parse_with_library(text, wanted, openmetrics)


def _parse_with_library(text: str, wanted: Collection[str] | None, openmetrics: bool) -> list[Family]:
    parser = _openmetrics_families if openmetrics else _text_families
    try:
        families = [
            Family(m.name, m.type, m.documentation, [(s.name, s.labels, s.value, s.timestamp) for s in m.samples])
            for m in parser(text)
            if wanted is None or m.name in wanted
        ]
        for family in families:
            distinct = {(s[0], tuple(sorted(s[1].items()))) for s in family.samples}
            family.duplicates = len(family.samples) - len(distinct)
        return families
    except Exception as exc:  # the library raises ValueError, IndexError, TypeError... on bad input
        raise ParseError(f"invalid exposition: {exc}") from None


def _number(token: str) -> float:
    if "_" in token:  # float() accepts 1_000; the exposition format does not
        raise _Unusual
    try:
        return float(token)
    except ValueError:
        raise _Unusual from None


_intern = sys.intern


def _sample(line: str, label_cache: dict[str, Labels]) -> Sample:
    match = _SAMPLE(line)
    if match is None:
        raise _Unusual
    name, block, value, timestamp = match.groups()
    labels: Labels = {}
    if block:
        # Series of different families often share a label set; share one dict (never mutated).
        cached = label_cache.get(block)
        if cached is not None:
            labels = cached
        else:
            pairs = _LABEL_PAIRS(block)
            # Interned: a model name or bucket bound repeats on thousands of lines, and the
            # series cache keeps these dicts for as long as the series exist.
            labels = {_intern(k): _intern(v) for k, v in pairs}
            if len(labels) != len(pairs) or ("__" in block and any(k.startswith("__") for k in labels)):
                raise _Unusual  # duplicate or reserved label names: the library decides
            if 'le="' not in block:  # bucket label sets are each used once
                label_cache[block] = labels
    ts = None
    if timestamp is not None:  # milliseconds; parsed as the library does, int first
        if "_" in timestamp:
            raise _Unusual
        try:
            ts = int(timestamp) / 1000
        except ValueError:
            ts = _number(timestamp) / 1000
    return (name, labels, _number(value), ts)


_IGNORED = ("", "", "", ())


def _comment(line: str) -> tuple[str, str, str, tuple[str, ...]]:
    """What a comment line means to the parser: (HELP or TYPE or "", name, help text or type,
    the sample names a TYPE allows). Same rules as prometheus_client's parser."""
    parts = _COMMENT_SPLIT(line, 3)
    if '"' in "".join(parts[:3]):
        raise _Unusual  # quoted names change how the library splits
    if len(parts) < 2:
        return _IGNORED
    keyword = parts[1]
    candidate = ""
    if len(parts) > 2:
        if keyword != "TYPE" and keyword != "HELP":
            return _IGNORED
        candidate = parts[2]
        if _METRIC_NAME.fullmatch(candidate) is None:
            raise _Unusual
    if keyword == "HELP":
        doc = parts[3] if len(parts) == 4 else ""
        if "\\" in doc:
            doc = _HELP_ESCAPES.sub(lambda m: "\n" if m.group() == "\\n" else "\\", doc)
        return ("HELP", candidate, doc, ())
    if keyword == "TYPE":
        if len(parts) < 4 or parts[3] not in _TYPES and parts[3] != "untyped":
            raise _Unusual
        typ = parts[3]
        return ("TYPE", candidate, typ, tuple(candidate + suffix for suffix in _ALLOWED_SUFFIXES.get(typ, ("",))))
    return _IGNORED


def _parse_fast(text: str, wanted: Collection[str] | None, series: dict | None = None) -> list[Family]:
    if not isinstance(series, SeriesCache):
        return _parse_lines(text, wanted, {} if series is None else series, None)
    added = [0]  # bytes of the entries this parse adds (SeriesCache.bytes), even when it gives up midway
    try:
        return _parse_lines(text, wanted, series, added)
    finally:
        series.bytes += added[0]


def _parse_lines(text: str, wanted: Collection[str] | None, series: dict, added: list[int] | None) -> list[Family]:
    want_all = wanted is None
    comments = getattr(series, "comments", {})  # comment lines repeat across scrapes too
    # A counter family may be named with or without _total on its TYPE line.
    raw_wanted = set() if want_all else {n for w in wanted for n in (w, w + "_total")}
    families: list[Family] = []
    name, doc, typ = "", "", "untyped"
    samples: list[Sample] = []
    allowed: tuple[str, ...] = ()
    keep = False
    duplicates = 0
    label_cache: dict[str, Labels] = {}

    seen: set[str] = set()  # heads of the kept series, to count duplicates
    seen_add = seen.add

    def close() -> None:
        family_name, family_type, family_samples = name, typ, samples
        if family_type == "counter":
            if family_name.endswith("_total"):
                family_name = family_name[:-6]
            else:
                family_samples = [(s[0] + "_total", s[1], s[2], s[3]) for s in samples]
        elif family_type == "untyped":
            family_type = "unknown"
        if want_all or family_name in wanted:
            families.append(Family(family_name, family_type, doc, family_samples, duplicates))

    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line[0] == "#":
            record = comments.get(line)
            if record is None:
                record = comments[line] = _comment(line)
                if added is not None:
                    added[0] += 2 * len(line) + COMMENT_COST
            keyword, candidate, rest, record_allowed = record
            if keyword == "HELP":
                if candidate != name:
                    if name != "":
                        close()
                    name, typ, samples, duplicates = candidate, "untyped", [], 0
                    allowed = (candidate,)
                    keep = want_all or candidate in raw_wanted
                doc = rest
            elif keyword == "TYPE":
                if candidate != name:
                    if name != "":
                        close()
                    name, doc, samples, duplicates = candidate, "", [], 0
                    keep = want_all or candidate in raw_wanted
                typ, allowed = rest, record_allowed
            continue

        head, _, value = line.rpartition(" ")
        known = series.get(head)
        if known is None:  # first sight of this series: check the line itself
            match = _NAME_PREFIX(line)
            if match is None:
                raise _Unusual
            sample_name, end = match.group(), match.end()
            if end == len(line) or line[end] not in " {":
                raise _Unusual
            labels = None
        else:
            sample_name, labels = known
        if sample_name not in allowed:
            # The library closes the family and yields this sample as an untyped singleton.
            if name != "":
                close()
            name, doc, typ, samples, allowed, keep, duplicates = "", "", "untyped", [], (), False, 0
            if want_all or sample_name in wanted:
                sample = _sample(line, label_cache)
                families.append(Family(sample_name, "unknown", "", [sample]))
            else:
                _number(value)  # a cheap sanity check of lines we skip
            continue
        if not keep:
            _number(value)
            if known is None:
                series[head] = (sample_name, None)
                if added is not None:
                    added[0] += len(head) + SKIPPED_SERIES_COST
        elif labels is not None:  # seen in an earlier scrape: only the value is new
            if "_" in value:
                raise _Unusual
            try:
                samples.append((sample_name, labels, float(value), None))
            except ValueError:
                raise _Unusual from None
            if head in seen:
                duplicates += 1
            else:
                seen_add(head)
        else:
            sample = _sample(line, label_cache)
            samples.append(sample)
            if sample[3] is None:  # no timestamp: the line is exactly head + " " + value
                series[head] = (sample_name, sample[1])
                if added is not None:
                    added[0] += 2 * len(head) + KEPT_SERIES_COST
            line_key = head if sample[3] is None else line.rsplit(" ", 2)[0]  # a series, without its value
            if line_key in seen:
                duplicates += 1
            seen_add(line_key)
    if name != "":
        close()
    return families
