"""The monitor's results store, on SQLite and on PostgreSQL: filters, retention, hashed ids, durable deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mmemo.monitor.engine import Alert
from mmemo.monitor.store import RecordFilter, ResultStore

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


def test_wal_filters_timeline_and_stats(db_url):
    store = ResultStore(db_url)
    assert store.journal_mode() == ("wal" if db_url.startswith("sqlite") else None)
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


def test_retention_purges_old_rows_and_embedding_files(tmp_path, db_url):
    store = ResultStore(db_url, retention_days=7)
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


def test_hashed_ids_are_salted_and_deletable_by_original_id(tmp_path, db_url):
    store = ResultStore(db_url, hash_ids=True, salt="s1")
    other_salt = ResultStore(db_url, hash_ids=True, salt="s2")
    record = add(store, "+44 20 7946 0000", "angry")
    assert record["audio_id"] == store.stored_id("+44 20 7946 0000") != other_salt.stored_id("+44 20 7946 0000")
    assert "+44" not in record["audio_id"]
    assert len(store.records(RecordFilter(audio_id="+44 20 7946 0000"))) == 1
    assert store.delete_audio("+44 20 7946 0000")["records"] == 1 and store.records() == []


def queue(store: ResultStore, alert_id: int | None, key: str = "k1", due: float = 100.0, retries: int = 2) -> int:
    return store.add_delivery(alert_id=alert_id, url="http://x/hook", action={"retries": retries, "backoff": 1.0,
                                                                              "timeout": 5, "headers": {}},
                              payload={"rule": "anger", "idempotency_key": key}, key=key, due=due)


def test_delivery_is_queued_claimed_once_retried_then_dead_lettered(db_url):
    store = ResultStore(db_url)
    alert_id = store.add_alert(alert("a", NOW))
    queue(store, alert_id)
    assert store.alerts()[0]["delivery"] == "pending" and store.pending_deliveries() == 1
    assert store.claim_delivery(now=99.0, lease_seconds=60) is None  # not due yet
    claimed = store.claim_delivery(now=100.0, lease_seconds=60)
    assert claimed["key"] == "k1" and claimed["attempts"] == 0 and claimed["payload"]["rule"] == "anger"
    assert store.claim_delivery(now=101.0, lease_seconds=60) is None  # leased: no second sender
    assert store.delivery_attempted(claimed["id"], ok=False, error="HTTP 500", retry_at=102.0) == "pending"
    assert store.next_delivery_due() == 102.0 and store.claim_delivery(now=101.5, lease_seconds=60) is None
    again = store.claim_delivery(now=102.0, lease_seconds=60)
    assert again["id"] == claimed["id"] and again["attempts"] == 1
    assert store.delivery_attempted(again["id"], ok=False, error="HTTP 503") == "dead"
    (dead,) = store.dead_letters()
    assert dead["alert_id"] == alert_id and dead["attempts"] == 2 and dead["last_error"] == "HTTP 503"
    assert dead["payload"] == {"rule": "anger", "idempotency_key": "k1"}
    assert store.alerts()[0]["delivery"] == "dead" and store.pending_deliveries() == 0


def test_a_lease_left_by_a_killed_process_expires(db_url):
    store = ResultStore(db_url)
    queue(store, store.add_alert(alert("a", NOW)))
    assert store.claim_delivery(now=100.0, lease_seconds=30) is not None  # then the process dies
    restarted = ResultStore(db_url)
    assert restarted.claim_delivery(now=120.0, lease_seconds=30) is None
    resumed = restarted.claim_delivery(now=131.0, lease_seconds=30)
    assert resumed is not None and restarted.delivery_attempted(resumed["id"], ok=True) == "delivered"
    assert restarted.alerts()[0]["delivery"] == "delivered" and restarted.dead_letters() == []


def test_alert_with_two_webhooks_is_dead_if_either_is(db_url):
    store = ResultStore(db_url)
    alert_id = store.add_alert(alert("a", NOW))
    first, second = queue(store, alert_id, "k1"), queue(store, alert_id, "k2")
    store.claim_delivery(now=100.0, lease_seconds=5)
    store.delivery_attempted(first, ok=True)
    assert store.alerts()[0]["delivery"] == "pending"  # the other one is still on its way
    store.claim_delivery(now=100.0, lease_seconds=5)
    store.delivery_attempted(second, ok=False, error="timeout")
    assert store.alerts()[0]["delivery"] == "dead"


def test_cooldown_clock_is_derived_from_stored_alerts(db_url):
    store = ResultStore(db_url)
    store.add_alert(alert("a", NOW - timedelta(hours=2)))
    store.add_alert(alert("b", NOW))
    store.add_alert(alert("c", NOW - timedelta(hours=1), rule="sadness"))
    firings = ResultStore(db_url).last_firings()  # a new process
    assert firings == {("anger", "c"): pytest.approx(NOW.timestamp()),
                       ("sadness", "c"): pytest.approx((NOW - timedelta(hours=1)).timestamp())}


def test_deleting_an_audio_id_forgets_its_deliveries(db_url):
    store = ResultStore(db_url)
    queue(store, store.add_alert(alert("secret-call", NOW)))
    assert store.delete_audio("secret-call")["alerts"] == 1
    assert store.deliveries() == [] and store.pending_deliveries() == 0


def test_face_timelines_are_stored_listed_read_and_forgotten_with_their_record(tmp_path, db_url):
    from sqlalchemy import text

    store = ResultStore(db_url, retention_days=7)
    face = (np.array([0.1, 0.3, 0.5]), np.array([[0.2, 0.8], [0.4, 0.6], [0.7, 0.3]]))
    with_face = store.add_record(audio_id="call.mp4", channel="c", source="upload", model_id="m", granularity="frame",
                                 label="angry", confidence=0.9, scores={"angry": 0.9, "other": 0.1}, duration=0.6,
                                 timeline=(np.array([0.01]), np.array([[0.9, 0.1]])), classes=["angry", "other"],
                                 modality_timelines={"face": face}, created_at=NOW - timedelta(days=8))
    plain = add(store, "call.wav", "sad")
    assert with_face["timelines"] == {"speech": f"/records/{with_face['id']}/timeline",
                                      "face": f"/records/{with_face['id']}/timeline?modality=face"}
    assert plain["timelines"] == {"speech": f"/records/{plain['id']}/timeline"}
    listed = {r["audio_id"]: r["timelines"] for r in store.records()}
    assert set(listed["call.mp4"]) == {"speech", "face"} and set(listed["call.wav"]) == {"speech"}
    read = store.timeline(with_face["id"], "face")
    assert read["modality"] == "face" and np.allclose(read["times"], face[0]) and np.allclose(read["scores"], face[1])
    assert store.timeline(with_face["id"])["times"] == pytest.approx([0.01])  # the audio's stays the default
    assert store.timeline(plain["id"], "face") is None
    with pytest.raises(ValueError, match="own timeline"):
        store.add_record(audio_id="x", channel="c", source="upload", model_id="m", granularity="frame", label=None,
                         confidence=None, scores={}, duration=1.0, modality_timelines={"speech": face})
    # retention takes the face timeline with its record; nothing of it is left behind
    assert store.purge_expired(now=NOW)["records"] == 1
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM modality_timelines")).scalar() == 0
        assert connection.execute(text("SELECT COUNT(*) FROM timelines")).scalar() == 1  # call.wav's
    store.delete_audio("call.wav")
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM timelines")).scalar() == 0


def test_a_database_made_before_video_gains_the_face_table(tmp_path):
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = ResultStore(url)
    add(old, "a", "angry")
    with old.engine.begin() as connection:
        connection.execute(text("DROP TABLE modality_timelines"))  # as a database made before video was
    old.close()
    store = ResultStore(url)
    assert [r["timelines"] for r in store.records()] == [{"speech": "/records/1/timeline"}]
    made = store.add_record(audio_id="b", channel="c", source="upload", model_id="m", granularity="frame",
                            label="angry", confidence=0.9, scores={"angry": 0.9}, duration=1.0,
                            timeline=(np.array([0.1]), np.array([[1.0]])), classes=["angry"],
                            modality_timelines={"face": (np.array([0.1]), np.array([[1.0]]))})
    assert store.timeline(made["id"], "face")["scores"] == [[1.0]]
