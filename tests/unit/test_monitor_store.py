"""The monitor's results store on SQLite: WAL, filters, retention, hashed ids, dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from mmemo.monitor.engine import Alert
from mmemo.monitor.store import RecordFilter, ResultStore, sqlite_url

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def add(store: ResultStore, audio_id: str, label: str, *, days_ago: float = 0, channel: str = "c",
        alert_ids: list[int] | None = None, embedding_path: str | None = None) -> dict:
    return store.add_record(audio_id=audio_id, channel=channel, source="upload", model_id="m", granularity="frame",
                            label=label, confidence=0.9, scores={label: 0.9, "other": 0.1}, duration=1.0,
                            timeline=(np.array([0.01, 0.03]), np.array([[0.9, 0.1], [0.8, 0.2]])),
                            classes=[label, "other"], alert_ids=alert_ids, embedding_path=embedding_path,
                            created_at=NOW - timedelta(days=days_ago))


def alert(audio_id: str, fired_at: datetime, rule: str = "anger") -> Alert:
    return Alert(rule=rule, priority="high", channel="c", audio_id=audio_id, start=0.0, end=2.0, score=0.8,
                 threshold=0.75, emotions=["angry"], fired_at=fired_at.timestamp())


def test_wal_filters_timeline_and_stats(tmp_path):
    store = ResultStore(sqlite_url(tmp_path / "m.db"))
    assert store.journal_mode() == "wal"
    alert_id = store.add_alert(alert("a", NOW))
    first = add(store, "a", "angry", days_ago=2, alert_ids=[alert_id])
    add(store, "b", "sad", channel="d")
    assert first["alert_rules"] == ["anger"] and first["alert_count"] == 1
    assert [r["audio_id"] for r in store.records(RecordFilter(alert=True))] == ["a"]
    assert [r["audio_id"] for r in store.records(RecordFilter(since=NOW - timedelta(days=1)))] == ["b"]
    assert [r["audio_id"] for r in store.records(RecordFilter(emotion="sad", channel="d"))] == ["b"]
    assert store.records(RecordFilter(alert="other-rule")) == []
    timeline = store.timeline(first["id"])
    assert np.allclose(timeline["scores"], [[0.9, 0.1], [0.8, 0.2]]) and timeline["classes"] == ["angry", "other"]
    stats = store.stats(bucket="day")
    assert stats["distribution"] == {"angry": 1, "sad": 1} and len(stats["trend"]) == 2


def test_retention_purges_old_rows_and_embedding_files(tmp_path):
    store = ResultStore(sqlite_url(tmp_path / "m.db"), retention_days=7)
    embedding = tmp_path / "old.npy"
    np.save(embedding, np.zeros(4))
    add(store, "old", "angry", days_ago=8, embedding_path=str(embedding),
        alert_ids=[store.add_alert(alert("old", NOW - timedelta(days=8)))])
    add(store, "new", "sad", days_ago=6)
    store.add_alert(alert("new", NOW - timedelta(days=6)))
    purged = store.purge_expired(now=NOW)
    assert purged["records"] == 1 and purged["alerts"] == 1 and purged["embedding_files"] == 1
    assert [r["audio_id"] for r in store.records()] == ["new"] and not embedding.exists()
    assert [a["audio_id"] for a in store.alerts()] == ["new"]


def test_hashed_ids_are_salted_and_deletable_by_original_id(tmp_path):
    store = ResultStore(sqlite_url(tmp_path / "m.db"), hash_ids=True, salt="s1")
    other_salt = ResultStore(sqlite_url(tmp_path / "n.db"), hash_ids=True, salt="s2")
    record = add(store, "+44 20 7946 0000", "angry")
    assert record["audio_id"] == store.stored_id("+44 20 7946 0000") != other_salt.stored_id("+44 20 7946 0000")
    assert "+44" not in record["audio_id"]
    assert len(store.records(RecordFilter(audio_id="+44 20 7946 0000"))) == 1
    assert store.delete_audio("+44 20 7946 0000")["records"] == 1 and store.records() == []


def test_dead_letter_marks_the_alert(tmp_path):
    store = ResultStore(sqlite_url(tmp_path / "m.db"))
    alert_id = store.add_alert(alert("a", NOW))
    store.add_dead_letter(alert_id=alert_id, url="http://x/hook", payload={"rule": "anger"}, attempts=4,
                          last_error="HTTP 500")
    (dead,) = store.dead_letters()
    assert dead["alert_id"] == alert_id and dead["attempts"] == 4 and dead["payload"] == {"rule": "anger"}
    assert store.alerts()[0]["delivery"] == "dead"
