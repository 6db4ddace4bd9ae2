"""Where a rule's firing goes (the service log, a webhook, an e-mail) and how a rules file states it."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from mmemo.monitor.destinations import check_url
from mmemo.monitor.rule_fields import choice, fail, number
from mmemo.monitor.templates import DEFAULT_SUBJECT, TemplateProblem, check_payload_template, check_template

ACTION_TYPES = ("log", "webhook", "email")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
_ACTION_FIELDS = {"log": {"type", "level"},
                  "webhook": {"type", "url", "retries", "backoff", "timeout", "headers", "template"},
                  "email": {"type", "to", "subject", "retries", "backoff"}}

@dataclass(frozen=True)
class Action:
    """Where a firing goes: the service log, or an HTTP POST retried with exponential backoff."""

    type: str
    level: str = "warning"  # log
    url: str = ""  # webhook
    template: str = ""  # webhook: a built-in chat payload (slack, teams, discord, mattermost) or a Jinja2 template
    to: tuple[str, ...] = ()  # email recipients
    subject: str = ""  # email subject template
    retries: int = 3  # attempts after the first one
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    timeout: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()



def parse_action(raw: Any, source: str, where: str, index: int, allowed_hosts: Collection[str] = ()) -> Action:
    name = f"actions[{index}]"
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise fail(source, where, name, f"must be a mapping like {{type: log}}, got {raw!r}")
    kind = choice(raw.get("type"), ACTION_TYPES, source, where, f"{name}.type")
    unknown = set(raw) - _ACTION_FIELDS[kind]
    if unknown:
        raise fail(source, where, f"{name}.{sorted(unknown)[0]}",
                    f"unknown for a {kind} action (allowed: {', '.join(sorted(_ACTION_FIELDS[kind]))})")
    if kind == "log":
        return Action("log", level=choice(raw.get("level", "warning"), LOG_LEVELS, source, where, f"{name}.level"))
    retries = raw.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise fail(source, where, f"{name}.retries", f"must be an integer in [0, 20], got {retries!r}")
    if kind == "email":
        to = raw.get("to")
        to = [to] if isinstance(to, str) else to
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and _EMAIL.fullmatch(a) for a in to):
            raise fail(source, where, f"{name}.to",
                        f"must be an e-mail address or a list of them, got {raw.get('to')!r}")
        subject = raw.get("subject", DEFAULT_SUBJECT)
        try:
            check_template(subject)
        except TemplateProblem as error:
            raise fail(source, where, f"{name}.subject", str(error)) from None
        return Action("email", to=tuple(to), subject=subject, retries=retries,
                      backoff=number(raw.get("backoff", 1.0), source, where, f"{name}.backoff", 0.0, 3600.0))
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise fail(source, where, f"{name}.url", f"must be an http:// or https:// URL, got {url!r}")
    try:
        check_url(url, allowed_hosts)
    except ValueError as error:  # DestinationError, or a malformed URL (bad port, brackets)
        raise fail(source, where, f"{name}.url", str(error)) from None
    headers = raw.get("headers", {}) or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise fail(source, where, f"{name}.headers", "must map header names to strings")
    template = raw.get("template", "")
    if not isinstance(template, str):
        raise fail(source, where, f"{name}.template",
                    f"must be a built-in name or a template string, got {template!r}")
    try:
        check_payload_template(template)
    except TemplateProblem as error:
        raise fail(source, where, f"{name}.template", str(error)) from None
    return Action("webhook", url=url, retries=retries, template=template,
                  backoff=number(raw.get("backoff", 1.0), source, where, f"{name}.backoff", 0.0, 3600.0),
                  timeout=number(raw.get("timeout", 5.0), source, where, f"{name}.timeout", 0.001, 600.0),
                  headers=tuple(sorted((str(k), v) for k, v in headers.items())))
