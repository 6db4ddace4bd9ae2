"""The monitor database's tables (SQLAlchemy 2 declarative), and how values are stored in them.

:class:`~mmemo.monitor.store.ResultStore` reads and writes these; a migration or a report
that needs only the schema imports this module.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class RecordRow(Base):
    __tablename__ = "records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audio_id: Mapped[str] = mapped_column(String(256), index=True)
    channel: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    source: Mapped[str] = mapped_column(String(16))  # upload | stream | watch
    model_id: Mapped[str] = mapped_column(String(512))
    granularity: Mapped[str] = mapped_column(String(16))  # utterance | frame | segment (--segments vad)
    label: Mapped[str | None] = mapped_column(String(64), index=True)  # top emotion
    confidence: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(JSON)
    duration: Mapped[float] = mapped_column(Float)
    embedding_path: Mapped[str | None] = mapped_column(Text)
    alert_count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    alert_rules: Mapped[list] = mapped_column(JSON, default=list)
    timeline_id: Mapped[int | None] = mapped_column(ForeignKey("timelines.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)


class TimelineRow(Base):
    """Frame scores as an ``.npz`` blob: ``times [T]`` float32 s, ``scores [T,C]`` float32."""

    __tablename__ = "timelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classes: Mapped[list] = mapped_column(JSON)
    frames: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ModalityTimelineRow(Base):
    """A record's timeline of another modality (``face``); the record's own ``timeline_id`` is the
    audio's. A table of its own, so databases made before video gain it without a migration."""

    __tablename__ = "modality_timelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    timeline_id: Mapped[int] = mapped_column(ForeignKey("timelines.id", ondelete="CASCADE"))


class RationaleRow(Base):
    """A record's generated reason (``--explain``): a language model's text, stored apart from the model's
    scores and always returned marked as generated. A table of its own so old databases gain it by ``create_all``."""

    __tablename__ = "rationales"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True, unique=True)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(256))  # the LM that wrote it
    cues: Mapped[str] = mapped_column(Text)  # the measured voice cues it was given


class SegmentRow(Base):
    """One speech segment of a record analysed in segments (``--segments vad``): who, when, what was
    said, and its emotion. A table of its own so old databases gain it by ``create_all``."""

    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    speaker: Mapped[str | None] = mapped_column(String(64), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    words: Mapped[list] = mapped_column(JSON, default=list)
    label: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(JSON, default=dict)


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id", ondelete="SET NULL"), index=True)
    audio_id: Mapped[str] = mapped_column(String(256), index=True)
    channel: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(128), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    emotions: Mapped[list] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    delivery: Mapped[str] = mapped_column(String(16), default="none")  # none | pending | delivered | dead


class DeadLetterRow(Base):
    """A webhook that failed every attempt: kept with its payload so it can be replayed."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class DeliveryRow(Base):
    """A webhook delivery that outlives the process: resumed at start until delivered or dead.

    Times are epoch seconds (floats compare the same on every database). ``lease_until`` marks a
    delivery one process is attempting, so two monitors on one PostgreSQL never send it at once;
    a lease left by a killed process simply expires.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    action: Mapped[dict] = mapped_column(JSON)  # retries, backoff, timeout, headers
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    lease_until: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def iso_utc(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def encode_timeline(times: np.ndarray, scores: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, times=np.asarray(times, np.float32), scores=np.asarray(scores, np.float32))
    return buffer.getvalue()


def decode_timeline(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(data)) as arrays:
        return arrays["times"], arrays["scores"]
