"""The monitor as an attacker or a careless user meets it: rules files, webhook targets, tokens, logs."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from mmemo.monitor.analysis import Monitor
from mmemo.monitor.auth import RedactSecrets
from mmemo.monitor.delivery import AlertDispatcher
from mmemo.monitor.destinations import DestinationError, check_resolved, check_url
from mmemo.monitor.engine import Alert
from mmemo.monitor.rules import RulesError, default_rules_path, load_rules, parse_rules
from mmemo.monitor.rules_file import RulesFile
from mmemo.monitor.settings import MonitorSettings, SettingsError, weak_token
from mmemo.monitor.store import ResultStore

ANGER = {"name": "anger", "type": "threshold", "emotion": "angry", "threshold": 0.75, "duration": 2.0}
TOKEN = "a-strong-token-0123456789"


# -- rules files --------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("duration", ".nan"), ("threshold", ".nan"), ("cooldown", ".inf"),
                                          ("duration", "-.inf"), ("threshold", ".NaN")])
def test_non_finite_numbers_in_rules_are_refused(tmp_path, field, value):
    path = tmp_path / "rules.yaml"
    rule = {**ANGER}
    rule.pop(field, None)
    body = ", ".join(f"{k}: {v}" for k, v in rule.items())
    path.write_text(f"rules:\n  - {{{body}, {field}: {value}}}\n")
    with pytest.raises(RulesError, match=rf"rule 'anger' \(#1\), field '{field}': must be a finite number"):
        load_rules(path)


def test_non_finite_webhook_backoff_is_refused():
    action = {"type": "webhook", "url": "https://hooks.example.org/x", "backoff": float("inf")}
    with pytest.raises(RulesError, match=r"actions\[0\]\.backoff': must be a finite number"):
        parse_rules({"rules": [{**ANGER, "actions": [action]}]}, "r.yaml")


def test_a_rules_file_that_is_not_utf8_or_repeats_a_key_names_file_and_line(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules:\n  - {name: col\xe8re, type: threshold, emotion: angry, threshold: 0.5}\n")
    with pytest.raises(RulesError, match=rf"{path}:2: not valid UTF-8 \(byte 0xe8 at column 15\)"):
        load_rules(path)
    path.write_text("rules:\n  - name: a\n    type: threshold\n    emotion: angry\n    threshold: 0.5\n"
                    "    threshold: 0.9\n")
    with pytest.raises(RulesError, match=rf"{path}:6: not valid YAML: .*'threshold' appears twice"):
        load_rules(path)


def test_reload_never_raises_and_reports_each_new_error_once(tmp_path, caplog):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: anger, type: threshold, emotion: angry, threshold: 0.75}\n")
    rules = RulesFile(path, ["angry", "sad"])
    path.write_bytes(b"rules:\n  - {name: \xff\xfe}\n")
    with caplog.at_level(logging.ERROR, logger="mmemo.monitor.rules"):
        for _ in range(3):
            result = rules.reload()  # POST /rules/reload and the poller both land here
    assert not result.changed and "not valid UTF-8" in result.error and rules.last_error == result.error
    assert [r.name for r in rules.ruleset.rules] == ["anger"]  # the previous rules stay active
    assert len([r for r in caplog.records if "not valid UTF-8" in r.getMessage()]) == 1
    assert not any(r.exc_info for r in caplog.records)  # a message, not a traceback every second
    path.unlink()
    path.mkdir()  # whatever happens to the file, reload reports it
    assert "cannot read" in rules.reload().error
    path.rmdir()
    path.write_text("rules:\n  - {name: sadness, type: threshold, emotion: sad, threshold: 0.5}\n")
    assert rules.reload().changed and rules.last_error is None


def test_class_names_match_case_insensitively_with_the_spelling_suggested():
    ruleset = parse_rules({"rules": [{**ANGER, "emotion": "Angry"}]}, "r.yaml")
    assert ruleset.fit_classes(["angry", "sad"]).rules[0].emotions == ("angry",)
    assert parse_rules({"rules": [ANGER]}).fit_classes(["Angry", "Sad"]).rules[0].emotions == ("Angry",)
    with pytest.raises(RulesError, match=r"'angy' is not a class of the model; did you mean 'Angry'\?"):
        parse_rules({"rules": [{**ANGER, "emotion": "angy"}]}, "r.yaml").fit_classes(["Angry", "Sad"])


class _Model:
    """What the monitor reads of a predictor before any audio arrives."""

    def __init__(self, classes):
        self.classes, self.frame_rate, self.model_id, self.supports_frames = classes, 50.0, "stub", True


def test_default_rules_never_block_a_model_they_do_not_fit(tmp_path, caplog):
    settings = MonitorSettings(token=TOKEN, data_dir=tmp_path).resolve()
    with caplog.at_level(logging.INFO, logger="mmemo.monitor.rules"):
        sentiment = Monitor(settings, _Model(["negative", "neutral", "positive"]))
    assert sentiment.rules_file.ruleset.rules == []
    assert any("default rule 'sustained_anger' skipped" in r.getMessage() for r in caplog.records)
    spelled = Monitor(MonitorSettings(token=TOKEN, data_dir=tmp_path / "b").resolve(), _Model(["Angry", "Calm"]))
    assert spelled.rules_file.ruleset.rules[0].emotions == ("Angry",)
    own = tmp_path / "own.yaml"
    own.write_text(default_rules_path().read_text())
    with pytest.raises(RulesError, match="'angry' is not a class of the model"):  # a user's own file stays strict
        Monitor(MonitorSettings(token=TOKEN, data_dir=tmp_path / "c", rules=own).resolve(),
                _Model(["negative", "positive"]))
    for monitor in (sentiment, spelled):
        monitor.store.close()


# -- webhook destinations -----------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://169.254.10.1:8080/hook", "http://[fe80::1]/hook",
    "http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.GOOGLE.INTERNAL./x",
    "http://[fd00:ec2::254]/latest", "http://[::ffff:169.254.169.254]/", "http://100.100.100.200/meta",
    "http://0.0.0.0:9000/", "http://224.0.0.1/",
])
def test_link_local_and_metadata_webhooks_are_refused_unless_allowed(url):
    with pytest.raises(DestinationError):
        check_url(url)
    with pytest.raises(RulesError, match=r"actions\[0\]\.url'"):
        parse_rules({"rules": [{**ANGER, "actions": [{"type": "webhook", "url": url}]}]})
    host = url.split("//")[1].split("/")[0].rsplit(":", 1)[0] if "[" not in url else url.split("[")[1].split("]")[0]
    check_url(url, allowed_hosts=[host.rstrip(".")])  # explicitly allowed: fine


@pytest.mark.parametrize("url", ["https://hooks.example.org/x", "http://127.0.0.1:9000/h", "http://10.1.2.3/h",
                                 "http://[::1]:8000/h", "http://alerts.internal.corp/h"])
def test_ordinary_webhooks_are_accepted(url):
    check_url(url)


def test_a_name_resolving_to_a_metadata_address_is_refused_at_delivery(tmp_path, monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(DestinationError, match="resolves to 169.254.169.254"):
        check_resolved("https://innocent.example.org/hook")
    store = ResultStore(f"sqlite:///{tmp_path / 'm.db'}")
    sent = []
    dispatcher = AlertDispatcher(store, transport=lambda *args: sent.append(args) or 200)
    alert = Alert(rule="r", priority="high", channel="c", audio_id="a", start=0, end=1, score=1, threshold=0.5,
                  emotions=["angry"], fired_at=0.0)
    alert_id = store.add_alert(alert)
    (action,) = parse_rules({"rules": [{**ANGER, "actions": [{"type": "webhook", "url":
                                                               "https://innocent.example.org/hook"}]}]}).rules[0].actions
    dispatcher.dispatch(alert.to_dict(), alert_id, [action])
    assert dispatcher.join(timeout=10)
    dispatcher.stop()
    assert sent == []  # never sent, and not retried
    (dead,) = store.dead_letters()
    assert dead["attempts"] == 1 and dead["last_error"].startswith("refused:")


# -- tokens, settings, logs ---------------------------------------------------------------------------
@pytest.mark.parametrize("token, problem", [
    (" " * 16, "whitespace"), ("a" * 32, "distinct characters"), ("short-token", "fewer than 16"),
    ("correct-horse-battery\n", "whitespace"), ("ünïcödé-tökén-0123456", "non-ASCII"),
    ("\t" + "x1y2z3w4" * 3, "whitespace"),
])
def test_weak_tokens_are_refused(tmp_path, token, problem):
    assert problem in weak_token(token)
    with pytest.raises(SettingsError, match="too weak"):
        MonitorSettings(token=token, data_dir=tmp_path).resolve()


@pytest.mark.parametrize("option, value", [("max_duration_s", float("nan")), ("max_upload_mb", float("inf")),
                                           ("stream_hop_s", 0.0), ("silence_dbfs", float("nan")),
                                           ("max_concurrent_decodes", 0), ("retention_days", float("inf"))])
def test_non_finite_or_impossible_settings_are_refused(tmp_path, option, value):
    with pytest.raises(SettingsError):
        MonitorSettings(token=TOKEN, data_dir=tmp_path, **{option: value}).resolve()


def test_the_token_never_reaches_the_access_log(capsys):
    from uvicorn.logging import AccessFormatter

    logger = logging.getLogger("test.uvicorn.access")
    handler = logging.StreamHandler()
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    logger.addHandler(handler)
    logger.addFilter(RedactSecrets([TOKEN]))
    logger.propagate = False
    logger.warning('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/stream?channel=a&token={TOKEN}", "1.1", 101)
    logger.removeHandler(handler)
    other = logging.getLogger("test.mmemo")
    plain = logging.StreamHandler()
    other.addHandler(plain)
    other.addFilter(RedactSecrets([TOKEN]))
    other.propagate = False
    other.warning("Authorization: Bearer %s from %s", TOKEN, "a client")
    other.warning("webhook https://h.example/x?api_key=abc123&y=1 failed")
    other.removeHandler(plain)
    err = capsys.readouterr().err
    assert TOKEN not in err and "abc123" not in err
    assert "token=[redacted]" in err and "Bearer [redacted]" in err and "api_key=[redacted]" in err
    assert '"GET /stream?channel=a&token=[redacted] HTTP/1.1" 101' in err  # the access line keeps its shape


def test_settings_from_the_cli_refuse_nan(capsys):
    from mmemo.cli import main

    for argv in (["predict", "x.wav", "--max-seconds", "nan"], ["predict", "x.wav", "--batch-seconds", "1e999"],
                 ["monitor", "serve", "--model", "m", "--max-duration", "inf"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and "expected a finite number" in capsys.readouterr().err


def test_hydra_overrides_refuse_nan(tmp_path, caplog, monkeypatch):
    from mmemo.cli import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # set by Hydra runs in this process: a traceback then
    logging.getLogger("mmemo").addHandler(caplog.handler)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "data.max_seconds=nan", f"paths.root_dir={tmp_path}", "hydra/job_logging=none"])
    finally:
        logging.getLogger("mmemo").removeHandler(caplog.handler)
    assert exit_info.value.code == 2
    assert any("config key data.max_seconds is nan" in r.getMessage() for r in caplog.records)


def test_rules_path_is_not_in_the_public_health(tmp_path):
    from fastapi.testclient import TestClient

    from mmemo.monitor.service import create_app

    rules = tmp_path / "secret-folder" / "rules.yaml"
    rules.parent.mkdir()
    rules.write_text("rules: []\n")
    app = create_app(MonitorSettings(token=TOKEN, data_dir=tmp_path / "d", rules=rules), _Model(["angry"]))
    with TestClient(app) as client:
        public = client.get("/health").text
        private = client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert public == '{"status":"ok"}' and str(tmp_path) not in str(private)
    assert private["rules"]["file"] == "rules.yaml"
    assert Path(private["rules"]["file"]).name == "rules.yaml"
