"""Alert payloads and e-mail subjects from templates (Jinja2, sandboxed).

A webhook's ``template`` is a built-in chat shape (``slack``, ``teams``, ``discord``,
``mattermost``) or the user's own Jinja2 template that renders to JSON; an e-mail's ``subject``
is a one-line template. Templates see the alert's fields (``rule``, ``priority``, ``channel``,
``audio_id``, ``start``, ``end``, ``score``, ``threshold``, ``emotions``, ``description``,
``alert_id``) and nothing else: the sandbox refuses attribute tricks, so a rules file cannot
run code. Every template is rendered once against a sample alert when the rules load, so a
broken one is an error naming the rule, not a failed delivery at 3 a.m.
"""

from __future__ import annotations

import json

DEFAULT_SUBJECT = "[mmemo] {{ rule }} ({{ priority }}) on {{ channel }}"
_TEXT = ("mmemo alert *{{ rule }}* ({{ priority }}) on channel {{ channel }}: {{ description }}; "
         "score {{ '%.2f' | format(score) }} at {{ '%.1f' | format(start) }}-{{ '%.1f' | format(end) }} s "
         "of {{ audio_id }}")
BUILT_IN = {
    "slack": '{"text": {{ text | tojson }}}',
    "mattermost": '{"text": {{ text | tojson }}, "username": "mmemo"}',
    "discord": '{"content": {{ text | tojson }}}',
    "teams": ('{"@type": "MessageCard", "@context": "http://schema.org/extensions", "summary": {{ rule | tojson }}, '
              '"themeColor": {{ ("D13438" if priority in ("high", "critical") else "FFB900") | tojson }}, '
              '"title": {{ ("mmemo: " ~ rule) | tojson }}, "text": {{ text | tojson }}}'),
}
SAMPLE = {"rule": "angry_caller", "priority": "high", "channel": "line-1", "audio_id": "call-42.wav",
          "start": 3.0, "end": 5.0, "score": 0.91, "threshold": 0.75, "emotions": ["angry"],
          "description": "angry >= 0.75 for >= 2 s", "alert_id": 1, "fired_at": 0.0}


class TemplateProblem(ValueError):
    pass


def _environment():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


def render_text(template: str, alert: dict) -> str:
    try:
        return _environment().from_string(template).render(**alert)
    except Exception as error:  # syntax errors, sandbox refusals, undefined filters
        raise TemplateProblem(f"template does not render: {type(error).__name__}: {error}") from None


def render_payload(template: str, alert: dict) -> dict:
    """The JSON body for a webhook: mmemo's own event when ``template`` is empty, else the template's."""
    if not template:
        return alert
    source = BUILT_IN.get(template, template)
    text = render_text(_TEXT, alert)
    rendered = render_text(source, {**alert, "text": text})
    try:
        payload = json.loads(rendered)
    except json.JSONDecodeError as error:
        raise TemplateProblem(f"template does not render to JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(payload, dict):
        raise TemplateProblem("template must render to a JSON object")
    return payload


def check_template(template: str) -> None:
    if not isinstance(template, str) or "\n" in render_text(template, SAMPLE):
        raise TemplateProblem("must be a one-line template string")


def check_payload_template(template: str) -> None:
    if template:
        render_payload(template, SAMPLE)
