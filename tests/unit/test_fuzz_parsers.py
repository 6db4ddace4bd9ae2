"""Property-based fuzzing of what parses untrusted input: for *any* input, a valid object or a clear error.

"Clear error" means the parser's own error type, whose message names the file (and line where
there is one): :class:`ManifestError` for manifests, :class:`RulesError` for rules files and
``ValueError`` for malformed PCM. Any other exception type is a bug.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmemo.data.manifest import ManifestError, Utterance, iter_manifest, read_manifest
from mmemo.inference.stream import decode_chunk
from mmemo.monitor.rules import RulesError, RuleSet, load_rules

FUZZ = settings(max_examples=int(os.environ.get("MMEMO_FUZZ_EXAMPLES", 300)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
FIELDS = ["key", "wav", "emo", "speaker", "text", "start", "end", "length", "channel", "lang", "session", "gender",
          "dataset", "extra"]
records = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10)


def _json_text(value) -> str:
    """JSON as a careless writer makes it: NaN/Infinity literals included (json.dumps allows them)."""
    return json.dumps(value, allow_nan=True)


@st.composite
def manifest_lines(draw) -> bytes:
    kind = draw(st.sampled_from(["record", "record", "duplicate", "bytes", "text", "huge_number"]))
    if kind == "record":
        return _json_text(draw(records)).encode()
    if kind == "duplicate":  # a field written twice in one object
        record = draw(records)
        field = draw(st.sampled_from(FIELDS))
        body = _json_text(record)[1:-1]
        extra = f'"{field}": {_json_text(draw(scalars))}'
        return ("{" + (body + ", " if body else "") + extra + ", " + extra + "}").encode()
    if kind == "huge_number":
        return f'{{"key": "k", "wav": "a.wav", "emo": "x", "start": 1e{draw(st.integers(300, 400))}}}'.encode()
    if kind == "text":
        return draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=60))


@FUZZ
@given(st.lists(manifest_lines(), max_size=8))
def test_any_manifest_is_records_or_a_manifest_error(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        for utterance, issues in iter_manifest(path):  # never raises on content
            assert (utterance is None) == bool(issues)
            for issue in issues:
                assert str(issue).startswith(f"{path}:") and issue.problem
        try:
            utterances = read_manifest(path)
        except ManifestError as error:
            assert str(path) in str(error)
            return
        for u in utterances:
            assert isinstance(u, Utterance) and u.key and u.wav and u.emo
            for value in (u.start, u.end, u.length):
                assert value is None or (math.isfinite(value) and value >= 0)


rule_fields = st.dictionaries(
    st.sampled_from(["name", "type", "emotion", "emotions", "threshold", "duration", "aggregate", "channels",
                     "priority", "cooldown", "actions", "enabled", "description", "unknown"]),
    st.one_of(json_values, st.sampled_from(["threshold", "combination", "angry", "min", "mean", "high", ".nan",
                                            [{"type": "webhook", "url": "http://169.254.169.254/x"}],
                                            [{"type": "webhook", "url": "http://[::1"}], [{"type": "log"}]])),
    max_size=8)


@st.composite
def rules_texts(draw) -> bytes:
    kind = draw(st.sampled_from(["document", "document", "duplicate_key", "text", "bytes"]))
    if kind == "document":
        document = {"rules": draw(st.lists(rule_fields, max_size=3))}
        if draw(st.booleans()):
            document["defaults"] = draw(rule_fields)
        return yaml.safe_dump(document, allow_unicode=True).encode()
    if kind == "duplicate_key":
        return b"rules:\n  - name: a\n    threshold: 0.5\n    threshold: .nan\n"
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=200))


@FUZZ
@given(rules_texts(), st.booleans())
def test_any_rules_file_is_rules_or_a_rules_error(content, strict):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_bytes(content)
        try:
            ruleset = load_rules(path, ["angry", "happy", "sad"], strict=strict)
        except RulesError as error:
            assert str(error).startswith(str(path))
            return
        assert isinstance(ruleset, RuleSet)
        for rule in ruleset.rules:
            assert all(e in ("angry", "happy", "sad") for e in rule.emotions)
            for value in (rule.threshold, rule.duration, rule.cooldown):
                assert math.isfinite(value) and value >= 0


chunks = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda a: a.tobytes(), st.lists(st.floats(width=32), max_size=16).map(lambda v: np.array(v, "<f4"))),
    st.lists(st.floats(width=32), max_size=16).map(lambda v: np.array(v, dtype=np.float32)),
    st.lists(st.integers(-32768, 32767), max_size=16).map(lambda v: np.array(v, dtype=np.int16)),
    st.lists(st.integers(-2**31, 2**31 - 1), max_size=4).map(lambda v: np.array(v, dtype=np.int32)),
    st.just(np.zeros((2, 2), np.float32)), st.text(max_size=8), st.integers(), st.none(),
)


@FUZZ
@given(chunks, st.sampled_from(["pcm_s16le", "f32le"]))
def test_any_pcm_chunk_is_samples_or_a_value_error(chunk, encoding):
    try:
        samples = decode_chunk(chunk, encoding)
    except ValueError as error:
        assert "chunk" in str(error)
        return
    assert samples.dtype == np.float32 and samples.ndim == 1 and np.isfinite(samples).all()


@pytest.fixture(scope="module")
def e2v_predictor(tiny_e2v_dir):
    from mmemo.inference.predictor import Predictor

    return Predictor.from_source(tiny_e2v_dir)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=9000), st.just(b"\x00\x7f" * 4000)), max_size=5))
def test_a_stream_fed_any_chunks_gives_frames_or_value_errors_and_keeps_going(e2v_predictor, pieces):
    from mmemo.inference.stream import StreamSession

    session = StreamSession(e2v_predictor, hop_seconds=0.25, context_seconds=0.25, lookahead_seconds=0.1)
    classes = len(e2v_predictor.classes)
    for piece in pieces:
        try:
            times, probs = session.push(piece)
        except ValueError as error:
            assert "malformed" in str(error)
            continue
        assert probs.shape == (len(times), classes) and np.isfinite(probs).all()
    times, probs = session.finish()
    assert probs.shape == (len(times), classes)
