"""The emotion monitor: alert rules, results store, HTTP/WebSocket service and web UI.

See docs/monitor.md. Modules, one concept each: ``rules`` (rule file format), ``engine``
(rule evaluation over frames), ``store`` (database), ``delivery`` (log/webhook actions),
``batching`` (request batching), ``analysis`` (the Monitor core), ``settings``, ``auth``,
``limits``, ``streaming`` (WebSocket / chunked HTTP), ``watch`` (watch folder), ``service``
(routes + uvicorn) and ``ui/`` (static web UI).
"""
