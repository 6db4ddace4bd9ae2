"""The results store: analysed audio, frame timelines, alerts and undeliverable webhooks.

SQLAlchemy 2, so the same code runs on SQLite (the default, in WAL mode so readers never
block the writer) and PostgreSQL (``postgresql://...``; needs a driver such as psycopg).
Timelines live in their own table, referenced from the record, so listing records stays
cheap. Privacy: ``hash_ids`` stores a salted SHA-256 of every audio id instead of the id
(lookups and deletes hash the id they are given), and ``retention_days`` purges old rows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from mmemo.errors import MissingDependency
from mmemo.monitor.queue import DeliveryQueue
from mmemo.monitor.schema import (
    AlertRow,
    Base,
    DeadLetterRow,
    DeliveryRow,
    ModalityTimelineRow,
    RationaleRow,
    RecordRow,
    SegmentRow,
    TimelineRow,
    as_utc,
    decode_timeline,
    encode_timeline,
    iso_utc,
    utcnow,
)

log = logging.getLogger(__name__)
#: The modality of a record's own timeline (the audio's); others are stored beside it.
SPEECH = "speech"


@dataclass
class RecordFilter:
    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    emotion: str | None = None
    alert: bool | str | None = None  # True/False: with/without alerts; a string: that rule fired
    audio_id: str | None = None
    speaker: str | None = None  # records with a segment of this speaker
    limit: int = 100
    offset: int = 0


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


class ResultStore(DeliveryQueue):
    """All database access of the monitor; safe to share between threads."""

    def __init__(self, url: str, *, hash_ids: bool = False, salt: str = "", retention_days: float | None = None,
                 echo: bool = False):
        self.url = url
        self.hash_ids, self._salt = hash_ids, salt
        self.retention_days = retention_days
        self.is_sqlite = url.startswith("sqlite")
        try:
            self.engine: Engine = create_engine(
                url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30} if self.is_sqlite else {})
        except ModuleNotFoundError as error:
            raise MissingDependency(f"database URL {url.split('@')[-1]!r} needs the driver module {error.name!r}: "
                               f"install it (e.g. pip install psycopg[binary] for postgresql+psycopg://)") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            if url not in ("sqlite://", "sqlite:///:memory:"):
                Path(url.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; serialising writes here avoids "database is locked"
        # under concurrent requests (readers are not blocked, thanks to WAL).
        self._write_lock = threading.Lock() if self.is_sqlite else _NoLock()

    # -- ids -----------------------------------------------------------------------------------
    def stored_id(self, audio_id: str) -> str:
        """What is stored for ``audio_id``: itself, or its salted hash with ``hash_ids``."""
        if not self.hash_ids:
            return audio_id
        return hashlib.sha256((self._salt + "\0" + audio_id).encode()).hexdigest()[:40]

    def journal_mode(self) -> str | None:
        if not self.is_sqlite:
            return None
        with self.engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA journal_mode").scalar()

    # -- writes --------------------------------------------------------------------------------
    def add_record(self, *, audio_id: str, channel: str, source: str, model_id: str, granularity: str,
                   label: str | None, confidence: float | None, scores: dict[str, float], duration: float,
                   embedding_path: str | None = None, timeline: tuple[np.ndarray, np.ndarray] | None = None,
                   classes: list[str] | None = None, error: str | None = None,
                   alert_ids: list[int] | None = None, created_at: datetime | None = None,
                   modality_timelines: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   segments: list[dict] | None = None, rationale: dict | None = None) -> dict:
        """Insert one record (its audio timeline, and ``modality_timelines`` such as ``{"face": (times,
        scores)}``, a generated ``rationale``); link ``alert_ids`` that fired while it streamed."""
        with self._write_lock, self._sessions.begin() as session:
            timeline_id = self._add_timeline(session, timeline, classes)
            record = RecordRow(audio_id=self.stored_id(audio_id), channel=channel, source=source,
                               created_at=created_at or utcnow(), model_id=model_id, granularity=granularity,
                               label=label, confidence=confidence, scores={k: float(v) for k, v in scores.items()},
                               duration=float(duration), embedding_path=embedding_path, timeline_id=timeline_id,
                               error=error, alert_count=0, alert_rules=[])
            session.add(record)
            session.flush()
            others = {}
            for modality, frames in (modality_timelines or {}).items():
                if modality == SPEECH:
                    raise ValueError(f"{SPEECH!r} is the record's own timeline, not an extra modality")
                other_id = self._add_timeline(session, frames, classes)
                if other_id is not None:
                    session.add(ModalityTimelineRow(record_id=record.id, modality=modality, timeline_id=other_id))
                    others[modality] = other_id
            for seg in segments or []:
                session.add(SegmentRow(record_id=record.id, start=float(seg["start"]), end=float(seg["end"]),
                                       speaker=seg.get("speaker"), text=seg.get("text"), words=seg.get("words") or [],
                                       label=seg.get("label"), confidence=seg.get("confidence"),
                                       scores=seg.get("scores") or {}))
            if rationale is not None:
                session.add(RationaleRow(record_id=record.id, text=str(rationale["text"]),
                                         model=str(rationale["model"])[:256], cues=str(rationale.get("cues") or "")))
            if alert_ids:
                session.execute(update(AlertRow).where(AlertRow.id.in_(alert_ids)).values(record_id=record.id))
                rules = session.scalars(select(AlertRow.rule).where(AlertRow.id.in_(alert_ids))).all()
                record.alert_count, record.alert_rules = len(rules), sorted(set(rules))
            speakers = sorted({seg.get("speaker") for seg in segments or [] if seg.get("speaker")})
            return self._record_dict(record, sorted(others), speakers, bool(segments), rationale)

    def segments(self, record_id: int) -> list[dict] | None:
        """A record's speech segments in time order (None: no such record)."""
        with self._sessions() as session:
            if session.get(RecordRow, record_id) is None:
                return None
            rows = session.scalars(select(SegmentRow).where(SegmentRow.record_id == record_id)
                                   .order_by(SegmentRow.start)).all()
            return [{"start": r.start, "end": r.end, "speaker": r.speaker, "text": r.text, "words": r.words,
                     "label": r.label, "confidence": r.confidence, "scores": r.scores} for r in rows]

    @staticmethod
    def _add_timeline(session: Session, timeline: tuple[np.ndarray, np.ndarray] | None,
                      classes: list[str] | None) -> int | None:
        if timeline is None or not len(timeline[0]):
            return None
        row = TimelineRow(classes=list(classes or []), frames=int(len(timeline[0])), data=encode_timeline(*timeline))
        session.add(row)
        session.flush()
        return row.id

    def add_alert(self, alert: Any, delivery: str = "none") -> int:
        """Store an :class:`~mmemo.monitor.engine.Alert`; returns its id."""
        with self._write_lock, self._sessions.begin() as session:
            row = AlertRow(audio_id=self.stored_id(alert.audio_id), channel=alert.channel, rule=alert.rule,
                           priority=alert.priority,
                           fired_at=datetime.fromtimestamp(alert.fired_at, timezone.utc), start=alert.start,
                           end=alert.end, score=float(alert.score), threshold=float(alert.threshold),
                           emotions=list(alert.emotions), description=alert.description, delivery=delivery)
            session.add(row)
            session.flush()
            return row.id

    def last_firings(self) -> dict[tuple[str, str], float]:
        """When each (rule, channel) last fired (epoch s): the cooldown clock, derived from stored alerts."""
        query = select(AlertRow.rule, AlertRow.channel, func.max(AlertRow.fired_at)).group_by(AlertRow.rule,
                                                                                             AlertRow.channel)
        with self._sessions() as session:
            return {(rule, channel): as_utc(fired).timestamp() for rule, channel, fired in session.execute(query)}

    def delete_audio(self, audio_id: str) -> dict:
        """Forget one audio id: its records, timelines, alerts and embedding files (privacy)."""
        stored = self.stored_id(audio_id)
        with self._write_lock, self._sessions.begin() as session:
            records = session.scalars(select(RecordRow).where(RecordRow.audio_id == stored)).all()
            counts = self._delete_records(session, records)
            alert_ids = session.scalars(select(AlertRow.id).where(AlertRow.audio_id == stored)).all()
            session.execute(update(DeadLetterRow).where(DeadLetterRow.alert_id.in_(alert_ids)).values(alert_id=None))
            session.execute(delete(DeliveryRow).where(DeliveryRow.alert_id.in_(alert_ids)))  # payloads name the audio
            session.execute(delete(AlertRow).where(AlertRow.id.in_(alert_ids)))
        return {**counts, "alerts": len(alert_ids)}

    def _delete_records(self, session: Session, records: list[RecordRow]) -> dict:
        files = 0
        for record in records:
            if record.embedding_path:
                try:
                    Path(record.embedding_path).unlink()
                    files += 1
                except OSError:
                    pass
        timeline_ids = [r.timeline_id for r in records if r.timeline_id is not None]
        record_ids = [r.id for r in records]
        timeline_ids += session.scalars(select(ModalityTimelineRow.timeline_id)
                                        .where(ModalityTimelineRow.record_id.in_(record_ids))).all()
        session.execute(update(AlertRow).where(AlertRow.record_id.in_(record_ids)).values(record_id=None))
        session.execute(delete(ModalityTimelineRow).where(ModalityTimelineRow.record_id.in_(record_ids)))
        session.execute(delete(SegmentRow).where(SegmentRow.record_id.in_(record_ids)))
        session.execute(delete(RationaleRow).where(RationaleRow.record_id.in_(record_ids)))
        session.execute(delete(RecordRow).where(RecordRow.id.in_(record_ids)))
        session.execute(delete(TimelineRow).where(TimelineRow.id.in_(timeline_ids)))
        return {"records": len(record_ids), "embedding_files": files}

    def purge_expired(self, now: datetime | None = None) -> dict:
        """Delete records, alerts and dead letters older than ``retention_days`` (no-op without it)."""
        if not self.retention_days:
            return {"records": 0, "alerts": 0}
        cutoff = (now or utcnow()) - timedelta(days=self.retention_days)
        with self._write_lock, self._sessions.begin() as session:
            records = session.scalars(select(RecordRow).where(RecordRow.created_at < cutoff)).all()
            counts = self._delete_records(session, records)
            old_alerts = select(AlertRow.id).where(AlertRow.fired_at < cutoff)
            session.execute(delete(DeadLetterRow).where(DeadLetterRow.created_at < cutoff))
            session.execute(update(DeadLetterRow).where(DeadLetterRow.alert_id.in_(old_alerts)).values(alert_id=None))
            session.execute(delete(DeliveryRow).where(DeliveryRow.status != "pending",
                                                      DeliveryRow.created_at < cutoff))
            session.execute(update(DeliveryRow).where(DeliveryRow.alert_id.in_(old_alerts)).values(alert_id=None))
            alerts = session.execute(delete(AlertRow).where(AlertRow.fired_at < cutoff)).rowcount
        if counts["records"] or alerts:
            log.info("retention: purged %d record(s) and %d alert(s) older than %g days",
                     counts["records"], alerts, self.retention_days)
        return {**counts, "alerts": alerts}

    # -- reads ---------------------------------------------------------------------------------
    def records(self, where: RecordFilter | None = None) -> list[dict]:
        where = where or RecordFilter()
        query = select(RecordRow)
        if where.since:
            query = query.where(RecordRow.created_at >= where.since)
        if where.until:
            query = query.where(RecordRow.created_at < where.until)
        if where.channel:
            query = query.where(RecordRow.channel == where.channel)
        if where.emotion:
            query = query.where(RecordRow.label == where.emotion)
        if where.audio_id:
            query = query.where(RecordRow.audio_id == self.stored_id(where.audio_id))
        if where.alert is True:
            query = query.where(RecordRow.alert_count > 0)
        elif where.alert is False:
            query = query.where(RecordRow.alert_count == 0)
        elif isinstance(where.alert, str):
            query = query.where(RecordRow.id.in_(select(AlertRow.record_id).where(AlertRow.rule == where.alert)))
        if where.speaker:
            speaking = select(SegmentRow.record_id).where(SegmentRow.speaker == where.speaker)
            query = query.where(RecordRow.id.in_(speaking))
        query = query.order_by(RecordRow.created_at.desc(), RecordRow.id.desc()).limit(where.limit).offset(where.offset)
        with self._sessions() as session:
            rows = session.scalars(query).all()
            modalities: dict[int, list[str]] = {}
            for record_id, modality in session.execute(
                    select(ModalityTimelineRow.record_id, ModalityTimelineRow.modality)
                    .where(ModalityTimelineRow.record_id.in_([r.id for r in rows]))):
                modalities.setdefault(record_id, []).append(modality)
            speakers: dict[int, set] = {}
            for record_id, speaker in session.execute(select(SegmentRow.record_id, SegmentRow.speaker)
                                                      .where(SegmentRow.record_id.in_([r.id for r in rows]))):
                speakers.setdefault(record_id, set())
                if speaker:
                    speakers[record_id].add(speaker)
            rationales = {r.record_id: rationale_dict(r) for r in session.scalars(
                select(RationaleRow).where(RationaleRow.record_id.in_([r.id for r in rows])))}
            return [self._record_dict(row, sorted(modalities.get(row.id, [])), sorted(speakers.get(row.id, ())),
                                      row.id in speakers, rationales.get(row.id)) for row in rows]

    def count_records(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(RecordRow)) or 0

    def timeline(self, record_id: int, modality: str = SPEECH) -> dict | None:
        """One record's frame timeline of ``modality`` (``speech``: the audio's; ``face``, ...), or None."""
        with self._sessions() as session:
            record = session.get(RecordRow, record_id)
            if record is None:
                return None
            if modality == SPEECH:
                timeline_id = record.timeline_id
            else:
                timeline_id = session.scalar(select(ModalityTimelineRow.timeline_id).where(
                    ModalityTimelineRow.record_id == record_id, ModalityTimelineRow.modality == modality))
            if timeline_id is None:
                return None
            row = session.get(TimelineRow, timeline_id)
            times, scores = decode_timeline(row.data)
            return {"record_id": record_id, "modality": modality, "classes": row.classes, "times": times.tolist(),
                    "scores": scores.tolist()}

    def alerts(self, *, since: datetime | None = None, channel: str | None = None, rule: str | None = None,
               limit: int = 100) -> list[dict]:
        query = select(AlertRow)
        if since:
            query = query.where(AlertRow.fired_at >= since)
        if channel:
            query = query.where(AlertRow.channel == channel)
        if rule:
            query = query.where(AlertRow.rule == rule)
        query = query.order_by(AlertRow.fired_at.desc(), AlertRow.id.desc()).limit(limit)
        with self._sessions() as session:
            return [{"id": a.id, "record_id": a.record_id, "audio_id": a.audio_id, "channel": a.channel,
                     "rule": a.rule, "priority": a.priority, "fired_at": iso_utc(a.fired_at), "start": a.start,
                     "end": a.end, "score": a.score, "threshold": a.threshold, "emotions": a.emotions,
                     "description": a.description, "delivery": a.delivery} for a in session.scalars(query)]

    def dead_letters(self, limit: int = 100) -> list[dict]:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        with self._sessions() as session:
            return [{"id": d.id, "alert_id": d.alert_id, "url": d.url, "payload": d.payload, "attempts": d.attempts,
                     "last_error": d.last_error, "created_at": iso_utc(d.created_at)} for d in session.scalars(query)]

    def stats(self, *, since: datetime | None = None, channel: str | None = None, bucket: str = "hour") -> dict:
        """Label counts and per-bucket label counts over stored records (the UI's charts)."""
        query = select(RecordRow.created_at, RecordRow.label).where(RecordRow.label.is_not(None))
        if since:
            query = query.where(RecordRow.created_at >= since)
        if channel:
            query = query.where(RecordRow.channel == channel)
        width = {"minute": 60, "hour": 3600, "day": 86400}[bucket]
        distribution: dict[str, int] = {}
        trend: dict[int, dict[str, int]] = {}
        with self._sessions() as session:
            for created, label in session.execute(query):
                distribution[label] = distribution.get(label, 0) + 1
                start = int(as_utc(created).timestamp() // width * width)
                trend.setdefault(start, {})
                trend[start][label] = trend[start].get(label, 0) + 1
        return {"distribution": distribution, "bucket": bucket,
                "trend": [{"start": datetime.fromtimestamp(t, timezone.utc).isoformat(), "counts": counts}
                          for t, counts in sorted(trend.items())]}

    @staticmethod
    def _record_dict(row: RecordRow, modalities: list[str] | tuple[str, ...] = (), speakers: list[str] = (),
                     segmented: bool = False, rationale: dict | None = None) -> dict:
        timelines = {SPEECH: f"/records/{row.id}/timeline"} if row.timeline_id is not None else {}
        timelines.update({m: f"/records/{row.id}/timeline?modality={m}" for m in modalities})
        return {"id": row.id, "audio_id": row.audio_id, "channel": row.channel, "created_at": iso_utc(row.created_at),
                "source": row.source, "model_id": row.model_id, "granularity": row.granularity,
                "label": row.label, "confidence": row.confidence, "scores": row.scores, "duration": row.duration,
                "embedding_path": row.embedding_path, "alert_count": row.alert_count,
                "alert_rules": row.alert_rules or [],
                "timeline": timelines.get(SPEECH), "timelines": timelines, "error": row.error,
                "segments": f"/records/{row.id}/segments" if segmented else None, "speakers": list(speakers),
                "rationale": rationale}

    def close(self) -> None:
        self.engine.dispose()


def rationale_dict(row: RationaleRow) -> dict:
    """A stored reason as the API gives it: always marked as generated."""
    from mmemo.llm.rationales import Rationale

    return Rationale(row.text, row.model, row.cues).to_dict()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
