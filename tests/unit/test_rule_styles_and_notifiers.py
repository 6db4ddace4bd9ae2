"""Rules in the simple style, class masks, chat payload templates and e-mail over a real SMTP server."""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest
from test_rules import ANGER, CLASSES, timeline

from mmemo.monitor.delivery import AlertDispatcher, smtp_mailer
from mmemo.monitor.engine import Alert, AlertEngine
from mmemo.monitor.rules import RulesError, load_rules, parse_rules
from mmemo.monitor.store import ResultStore


def test_simple_style_rules_are_converted_with_a_note_and_fire_like_their_mmemo_form(tmp_path, caplog):
    path = tmp_path / "rules.yaml"
    path.write_text("- emotion: angry\n  threshold: 0.75\n  duration_sec: 2\n  action: log\n  cooldown_sec: 0\n"
                    "- {name: sad_line, emotion: sad, threshold: 0.6, duration_sec: 1, action: webhook,\n"
                    "   url: 'https://hooks.example.org/x'}\n")
    with caplog.at_level(logging.INFO, logger="mmemo.monitor.rules"):
        ruleset = load_rules(path, CLASSES)
    assert "2 rules in the simple style" in caplog.text and "angry >= 0.75 for >= 2 s" in caplog.text
    angry, sad = ruleset.rules
    assert (angry.name, angry.type, angry.duration, angry.cooldown) == ("angry_over_0.75", "threshold", 2.0, 0.0)
    assert sad.actions[0].type == "webhook" and sad.actions[0].url == "https://hooks.example.org/x"
    times, probs = timeline(6.0, angry=[(1.0, 3.5, 0.9)])
    simple = AlertEngine(ruleset, CLASSES).session("c", "a", 1 / 50, 0.0).feed(times, probs)
    native = AlertEngine(parse_rules({"rules": [ANGER]}).fit_classes(CLASSES), CLASSES).session(
        "c", "a", 1 / 50, 0.0).feed(times, probs)
    assert [a.end for a in simple if a.rule == angry.name] == [a.end for a in native]
    path.write_text("- {emotion: angry, threshold: 0.75, duration_sec: 2, action: pager}\n")
    with pytest.raises(RulesError, match="'pager' is not log, webhook or email"):
        load_rules(path, CLASSES)


def test_classes_restrict_the_scores_and_renormalise(tmp_path):
    ruleset = parse_rules({"classes": ["Angry", "happy", "neutral", "sad"], "rules": [ANGER]}).fit_classes(CLASSES)
    assert ruleset.classes == ("angry", "happy", "neutral", "sad")
    mask = ruleset.mask(CLASSES)
    probs = np.zeros((2, len(CLASSES)))
    probs[0, CLASSES.index("angry")], probs[0, CLASSES.index("other")] = 0.4, 0.6  # "other" is masked out
    probs[1, CLASSES.index("<unk>")] = 1.0  # nothing left: all zero, never NaN
    masked = mask(probs)
    assert masked[0, CLASSES.index("angry")] == pytest.approx(1.0) and masked[1].sum() == 0.0
    with pytest.raises(RulesError, match="'classes' leaves out"):
        parse_rules({"classes": ["happy", "sad"], "rules": [ANGER]})
    with pytest.raises(RulesError, match="'joyful', not a class of the model"):
        parse_rules({"classes": ["joyful", "angry"], "rules": [ANGER]}).fit_classes(CLASSES)
    with pytest.raises(RulesError, match="at least two distinct"):
        parse_rules({"classes": ["angry"], "rules": [ANGER]})


def alert_and_store(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'm.db'}")
    alert = Alert(rule="anger", priority="high", channel="line-1", audio_id="call.wav", start=1.0, end=3.0,
                  score=0.9, threshold=0.75, emotions=["angry"], fired_at=0.0, description="angry >= 0.75")
    return store, alert, store.add_alert(alert)


@pytest.mark.parametrize("template, check", [
    ("slack", lambda p: set(p) == {"text"} and "*anger* (high) on channel line-1" in p["text"]),
    ("teams", lambda p: p["@type"] == "MessageCard" and p["themeColor"] == "D13438"),
    ('{"msg": {{ ("%s on %s" | format(rule, channel)) | tojson }}, "score": {{ score }}}',
     lambda p: p == {"msg": "anger on line-1", "score": 0.9}),
])
def test_webhook_payload_templates(tmp_path, template, check):
    store, alert, alert_id = alert_and_store(tmp_path)
    sent = []
    dispatcher = AlertDispatcher(store, transport=lambda url, payload, headers, timeout: sent.append(payload) or 200,
                                 allowed_hosts=["hooks.example.org"])
    [action] = parse_rules({"rules": [{**ANGER, "actions": [
        {"type": "webhook", "url": "https://hooks.example.org/x", "template": template}]}]}).rules[0].actions
    dispatcher.dispatch(alert.to_dict(), alert_id, [action])
    assert dispatcher.join(10)
    dispatcher.stop()
    assert len(sent) == 1 and check(sent[0]), sent


@pytest.mark.parametrize("template, problem", [
    ("{{ rule ", "does not render"),
    ('{"a": {{ rule }}', "does not render to JSON"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "does not render"),  # the sandbox refuses
])
def test_bad_templates_are_refused_when_the_rules_load(template, problem):
    with pytest.raises(RulesError, match=problem) as error:
        parse_rules({"rules": [{**ANGER, "actions": [{"type": "webhook", "url": "https://h.example.org/x",
                                                      "template": template}]}]})
    assert "rule 'anger'" in str(error.value) and "actions[0].template" in str(error.value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_email_action_reaches_a_real_smtp_server(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    class Inbox(Sink):
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        store, alert, alert_id = alert_and_store(tmp_path)
        dispatcher = AlertDispatcher(store, mailer=smtp_mailer("127.0.0.1", controller.port, "monitor@example.org"))
        [action] = parse_rules({"rules": [{**ANGER, "actions": [
            {"type": "email", "to": ["ops@example.org", "lead@example.org"],
             "subject": "ALERT {{ rule }} on {{ channel }}"}]}]}).rules[0].actions
        dispatcher.dispatch(alert.to_dict(), alert_id, [action])
        assert dispatcher.join(10)
        dispatcher.stop()
    finally:
        controller.stop()
    [(recipients, content)] = inbox.messages
    assert recipients == ["ops@example.org", "lead@example.org"]
    assert "Subject: ALERT anger on line-1" in content and "Score: 0.900 (threshold 0.75)" in content
    assert dispatcher.delivered == 1


def test_email_without_an_smtp_server_is_dead_lettered_with_the_reason(tmp_path, caplog):
    store, alert, alert_id = alert_and_store(tmp_path)
    dispatcher = AlertDispatcher(store)
    [action] = parse_rules({"rules": [{**ANGER, "actions": [{"type": "email", "to": "ops@example.org"}]}]}
                           ).rules[0].actions
    with caplog.at_level(logging.ERROR, logger="mmemo.monitor.alerts"):
        dispatcher.dispatch(alert.to_dict(), alert_id, [action])
        assert dispatcher.join(10)
    dispatcher.stop()
    assert dispatcher.dead == 1 and "no SMTP server configured" in caplog.text
    with pytest.raises(RulesError, match="e-mail address"):
        parse_rules({"rules": [{**ANGER, "actions": [{"type": "email", "to": "not-an-address"}]}]})
    assert json.dumps(alert.to_dict())  # the alert itself stays serialisable
