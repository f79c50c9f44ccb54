"""The fast parser gives exactly what prometheus_client.parser gives, and rejects what it rejects."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from infersight.exporter.parse import (LAYOUT_RETRY_SCRAPES, Family, Layout, ParseError, SeriesCache, _parse_fast,
                                      _Unusual, parse)
from tests.conftest import CAPTURES, OWN_FIXTURES, examples


def _comparable(families):
    def value(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else float(v)

    def timestamp(t):
        return "nan" if isinstance(t, float) and math.isnan(t) else t

    return [(f.name, f.type, f.help, [(s[0], s[1], value(s[2]), timestamp(s[3])) for s in f.samples])
            for f in families]


def _library(text: str):
    return [Family(m.name, m.type, m.documentation, [(s.name, s.labels, s.value, s.timestamp) for s in m.samples])
            for m in text_string_to_metric_families(text)]


def _library_rejects(text: str) -> bool:
    try:
        _library(text)
    except Exception:  # the library raises ValueError, IndexError, TypeError... on bad input
        return True
    return False


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _repaired(text: str) -> str | None:
    """``text`` with every sample line the library rejects replaced by its bare name and the value
    0 (the family it belongs to is unchanged: both parsers place a line by its name), or None when
    a line at fault is not a sample line. The library reads line by line, so the shortest prefix
    it rejects ends at the line at fault."""
    lines = text.split("\n")
    for _ in range(len(lines)):
        bad = next((k for k in range(len(lines)) if _library_rejects("\n".join(lines[:k + 1]))), None)
        if bad is None:
            return "\n".join(lines)
        line = lines[bad].strip()
        name = _NAME.match(line)
        if line.startswith("#") or name is None or line == f"{name.group()} 0":
            return None
        lines[bad] = f"{name.group()} 0"
    return None


def _assert_same_as_library(text: str, wanted=None, series=None, layout=None) -> None:
    """A differential against prometheus_client's parser, on the path production takes (first read
    with ``series=None``; a warm series cache; a target's layout). Where the library accepts, the
    same families. Where it rejects, a full parse raises ParseError (the error the exporter counts
    as reason="parse"); nothing else, and no families.

    The one acceptance the library does not make, by design: a filtered parse reads only the name
    and the value of a line of a family it skips (exporter/parse.py), so a payload whose only
    faults are in such lines (bad labels, escapes or spacing) is accepted. Checked, not assumed:
    with those lines repaired the library must accept the payload and give the families we gave."""
    def ours():
        return parse(text, wanted, series=series, layout=layout)

    try:
        expected = [f for f in _library(text) if wanted is None or f.name in wanted]
    except Exception:
        if wanted is None:
            with pytest.raises(ParseError):
                ours()
            return
        try:
            families = ours()
        except ParseError:
            return
        repaired = _repaired(text)
        assert repaired is not None, f"accepted a payload whose fault is not in a skipped sample line: {text!r}"
        expected = [f for f in _library(repaired) if f.name in wanted]
        assert _comparable(families) == _comparable(expected), text
        return
    assert _comparable(ours()) == _comparable(expected)


# --- generated expositions -------------------------------------------------------------------

_names = st.sampled_from(["a", "a_total", "b", "b_bucket", "b_count", "b_sum", "b_created", "c:d", "e_total"])
_label_names = st.sampled_from(["le", "model_name", "x", "quantile", "__name__", "_y", "a:b"])
_label_values = st.text(alphabet=st.sampled_from(list('ab ,={}"\\\nü0.5+Inf')), max_size=6)
_numbers = st.one_of(
    st.sampled_from(["0", "1", "-1", "1.5", "1e3", "+Inf", "-Inf", "NaN", "nan", "1_0", "0x1", "", "1.7e+09", "٣"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
)
_types = st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "bogus", None])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@st.composite
def _sample_line(draw, name: str) -> str:
    labels = draw(st.lists(st.tuples(_label_names, _label_values), max_size=3))
    escape = draw(st.booleans())
    rendered = ",".join(f'{k}="{_escape(v) if escape else v}"' for k, v in labels)
    block = draw(st.sampled_from(["{%s}" % rendered, "{%s,}" % rendered, " {%s}" % rendered])) if labels else \
        draw(st.sampled_from(["", "{}"]))
    sep = draw(st.sampled_from([" ", " ", " ", "  ", "\t"]))
    line = f"{name}{block}{sep}{draw(_numbers)}"
    if draw(st.integers(0, 4)) == 0:
        line += " " + draw(st.sampled_from(["1700000000000", "17e11", "-5", "1_0", "x"]))
    if draw(st.integers(0, 9)) == 0:
        line += ' # {trace_id="1"} 0.5'  # an exemplar: OpenMetrics only
    return line


@st.composite
def _exposition(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(_names)
        help_text = draw(st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('ab \\n"é')), max_size=8)))
        if help_text is not None:
            lines.append(f"# HELP {name} {help_text}".rstrip())
        typ = draw(_types)
        if typ is not None:
            lines.append(f"# TYPE {name} {typ}")
        suffixes = st.sampled_from(["", "_total", "_bucket", "_sum", "_count", "_created"])
        for _ in range(draw(st.integers(0, 4))):
            lines.append(draw(_sample_line(name + draw(suffixes))))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(["", "# a comment", "#", "garbage line", "\x00\x01", "  a 1  "])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\r\n"]))


@settings(max_examples=examples(1500, 300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exposition(), st.one_of(st.none(), st.sets(_names, max_size=3)))
@example('# TYPE a counter\na 1\na_total 2\n', None)
@example('# HELP a x\n# TYPE a histogram\na_bucket{le="+Inf"} 1\na_count 1\na_sum 0.5\na_created 1\n', {"a"})
@example('a{x="1",x="2"} 1\n', None)
@example('#" HELP a b\n', None)
def test_fast_parser_matches_the_library(text: str, wanted) -> None:
    _assert_same_as_library(text, wanted)


# Every payload the library rejects and a parse accepts, with the reason. Nothing else is accepted
# (the differential above checks that on every path).
_OK = "# TYPE vllm:x gauge\nvllm:x{model_name=\"m\"} 1\n"


@pytest.mark.parametrize(("skipped_line", "accepted"), [
    ('other{a="1",a="2"} 1', True),  # duplicate label names: the labels of a skipped line are not read
    ('other{a="1} 1', True),  # a label value without its closing quote
    ('other{a="1"}} 1', True),  # text between the labels and the value
    ("other 1_0", False),  # the value of every line is read: a bad value fails the payload
    ("other x", False),
    ("# TYPE other bogus", False),  # comment lines are read for every family
])
def test_a_filtered_parse_reads_only_the_name_and_value_of_lines_it_skips(skipped_line: str, accepted: bool) -> None:
    text = _OK + skipped_line + "\n"
    assert _library_rejects(text)
    for series, layout in ((None, None), (SeriesCache(), None), (SeriesCache(), Layout())):
        for _ in range(3):  # first read, then the cache and the layout
            if accepted:
                assert parse(text, {"vllm:x"}, series=series, layout=layout) == [
                    Family("vllm:x", "gauge", "", [("vllm:x", {"model_name": "m"}, 1.0, None)])]
            else:
                with pytest.raises(ParseError):
                    parse(text, {"vllm:x"}, series=series, layout=layout)
            with pytest.raises(ParseError):  # a full parse reads every line
                parse(text, None, series=series, layout=layout)


def test_the_series_cache_is_bounded() -> None:
    cache = SeriesCache(max_entries=3)
    text = "".join(f'# TYPE m{i} gauge\nm{i}{{a="{i}"}} 1\n' for i in range(5))
    assert len(parse(text, None, series=cache)) == 5
    assert len(cache) == 0  # 5 > 3 entries: cleared rather than grown
    small = "".join(f'# TYPE m{i} gauge\nm{i}{{a="{i}"}} 1\n' for i in range(3))
    parse(small, {"m0", "m1"}, series=cache)
    assert cache == {'m0{a="0"}': ("m0", {"a": "0"}), 'm1{a="1"}': ("m1", {"a": "1"}), 'm2{a="2"}': ("m2", None)}


@settings(max_examples=examples(500, 100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exposition(), _exposition(), st.one_of(st.none(), st.sets(_names, max_size=3)))
def test_a_series_cache_from_earlier_payloads_changes_nothing(first: str, second: str, wanted) -> None:
    cache: dict = {}
    for text in (first, second, second.replace("1", "7"), first):
        _assert_same_as_library(text, wanted, series=cache)


def test_a_warm_cache_reads_new_values() -> None:
    cache = SeriesCache()
    text = '# TYPE vllm:x gauge\nvllm:x{model_name="m"} 1\n'
    parse(text, {"vllm:x"}, series=cache)
    assert cache == {'vllm:x{model_name="m"}': ("vllm:x", {"model_name": "m"})}
    assert parse(text.replace("} 1", "} 2.5"), {"vllm:x"}, series=cache)[0].samples == [
        ("vllm:x", {"model_name": "m"}, 2.5, None)]


# --- the layout: a repeated payload with new values ----------------------------------------

_VALUE = re.compile(r"(?m)^([^#\n][^\n]* )([^ \n]*)$")


def _with_values(text: str, values: list[str]) -> str:
    """``text`` with each sample line's last token replaced, in turn, by one of ``values``."""
    if not values:
        return text
    counter = iter(range(10**9))
    return _VALUE.sub(lambda m: m.group(1) + values[next(counter) % len(values)], text)


@settings(max_examples=examples(800, 150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exposition(), st.lists(_numbers, max_size=6), st.lists(_numbers, max_size=6),
       st.one_of(st.none(), st.sets(_names, max_size=3)))
def test_a_layout_reads_new_values_like_the_library(text: str, values: list[str], more: list[str], wanted) -> None:
    cache, layout = SeriesCache(), Layout()
    for payload in (text, _with_values(text, values), _with_values(text, more), text,
                    text.replace("# TYPE", "# TYPE x gauge\n# TYPE", 1)):
        _assert_same_as_library(payload, wanted, cache, layout)


def test_a_layout_is_used_while_only_values_change() -> None:
    text = ('# HELP vllm:x Running.\n# TYPE vllm:x gauge\nvllm:x{model_name="m"} 1.0\n'
            '# HELP vllm:y_total Done.\n# TYPE vllm:y_total counter\nvllm:y_total{model_name="m"} 4.0\n'
            '# HELP vllm:z Skipped.\n# TYPE vllm:z gauge\nvllm:z 3.0\n')
    wanted = frozenset({"vllm:x", "vllm:y"})
    cache, layout = SeriesCache(), Layout()
    parse(text, wanted, series=cache, layout=layout)
    assert (layout.pieces is not None, layout.hits) == (True, 0)
    families = parse(_with_values(text, ["2.5", "NaN", "7"]), wanted, series=cache, layout=layout)
    assert layout.hits == 1
    assert _comparable(families) == [("vllm:x", "gauge", "Running.", [("vllm:x", {"model_name": "m"}, 2.5, None)]),
                                     ("vllm:y", "counter", "Done.", [("vllm:y_total", {"model_name": "m"}, "nan", None)])]
    # A value the format does not allow, in a family nobody asked for, still fails the payload.
    with pytest.raises(ParseError):
        parse(_with_values(text, ["1", "2", "1_0"]), wanted, series=cache, layout=layout)
    # A changed HELP line is a new layout, read by the line parser and remembered again.
    changed = text.replace("Running.", "Running now.")
    assert parse(changed, wanted, series=cache, layout=layout)[0].help == "Running now."
    assert (layout.pieces is not None, layout.hits) == (True, 0)


def test_a_payload_with_timestamps_stops_trying_layouts() -> None:
    cache, layout = SeriesCache(), Layout()
    for i in range(3):
        text = f"# TYPE a gauge\na {i} 170000000000{i}\n"  # a value, then a timestamp in milliseconds
        assert parse(text, None, series=cache, layout=layout)[0].samples == [("a", {}, float(i), 1700000000 + i / 1000)]
    # No layout built; the scrapes after the first failed try do not try again for a while.
    assert (layout.pieces, layout.skip) == (None, LAYOUT_RETRY_SCRAPES - 2)


# --- real payloads ---------------------------------------------------------------------------

_REAL = sorted(p for p in CAPTURES.rglob("*.txt")) + sorted(OWN_FIXTURES.glob("*.txt"))


@pytest.mark.parametrize("path", _REAL, ids=[p.name for p in _REAL])
def test_real_payloads_parse_like_the_library(path) -> None:
    _assert_same_as_library(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", _REAL, ids=[p.name for p in _REAL])
def test_real_payloads_with_new_values_parse_like_the_library(path) -> None:
    text = path.read_text(encoding="utf-8")
    cache, layout = SeriesCache(), Layout()
    for values in ([], ["0.25", "+Inf", "12345678901234567890"], ["-1e-300", "NaN"]):
        _assert_same_as_library(_with_values(text, values), None, cache, layout)


@pytest.mark.parametrize("path", [p for p in _REAL if "README-example" not in p.name and "vllm_backend" not in p.name],
                         ids=lambda p: p.name)
def test_real_payloads_take_the_fast_path(path) -> None:
    # Engines' ordinary output must not fall back to the slow library parser.
    _parse_fast(path.read_text(encoding="utf-8"), None)


# --- the unusual goes to the library ---------------------------------------------------------

@pytest.mark.parametrize("line", [
    'a{x="with \\"quote\\""} 1',  # escapes
    'a{x="1"} 1 # {trace_id="a"} 1',  # exemplar
    'a {x="1"} 1',  # space before labels
    'a{x="1"}\t1',  # tab separator
    'a 1_000',  # underscore in a value
    'a{__x="1"} 1',  # reserved label name
])
def test_unusual_lines_leave_the_fast_path(line: str) -> None:
    with pytest.raises(_Unusual):
        _parse_fast(line + "\n", None)
    _assert_same_as_library(line + "\n")


def test_wanted_families_only() -> None:
    text = ("# TYPE vllm:x gauge\nvllm:x{model_name=\"m\"} 1\n"
            "# TYPE other counter\nother_total 5\n"
            "# TYPE vllm:y_total counter\nvllm:y_total 2\n")
    assert [(f.name, f.type, f.samples) for f in parse(text, {"vllm:x", "vllm:y"})] == [
        ("vllm:x", "gauge", [("vllm:x", {"model_name": "m"}, 1.0, None)]),
        ("vllm:y", "counter", [("vllm:y_total", {}, 2.0, None)]),
    ]


def test_triton_counters_gain_total_as_in_the_library() -> None:
    text = "# TYPE nv_inference_request_success counter\nnv_inference_request_success{model=\"m\",version=\"1\"} 7\n"
    assert parse(text) == [Family("nv_inference_request_success", "counter", "",
                                  [("nv_inference_request_success_total", {"model": "m", "version": "1"}, 7.0, None)])]


@pytest.mark.parametrize("garbage", ["\x89PNG\r\n\x1a\n\x00\x00", "<html><body>502 Bad Gateway</body></html>",
                                     'vllm:x{model_name="trunc'])
def test_garbage_is_a_parse_error(garbage: str) -> None:
    with pytest.raises(ParseError):
        parse(garbage, {"vllm:x"})
