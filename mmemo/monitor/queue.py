"""The durable delivery queue of webhooks and e-mails, part of the results store.

A delivery is a row (``deliveries``) written before it is tried; a worker claims the most overdue
one with a lease (so two monitors on one database never send it at once), records each attempt,
and dead-letters it after its last retry. :class:`DeliveryQueue` is mixed into
:class:`~mmemo.monitor.store.ResultStore`, which provides the engine, sessions and write lock.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from mmemo.monitor.schema import AlertRow, DeadLetterRow, DeliveryRow, utcnow


class DeliveryQueue:
    _write_lock: object
    _sessions: object

    def add_delivery(self, *, alert_id: int | None, url: str, action: dict, payload: dict, key: str,
                     due: float) -> int:
        """Queue a delivery (status pending); the alert is marked ``pending`` in the same transaction."""
        with self._write_lock, self._sessions.begin() as session:
            row = DeliveryRow(alert_id=alert_id, idempotency_key=key, url=url, action=action, payload=payload,
                              status="pending", attempts=0, next_attempt_at=due, lease_until=None, last_error="",
                              created_at=utcnow())
            session.add(row)
            if alert_id is not None:
                session.execute(update(AlertRow).where(AlertRow.id == alert_id).values(delivery="pending"))
            session.flush()
            return row.id

    def claim_delivery(self, now: float, lease_seconds: float) -> dict | None:
        """The most overdue pending delivery, leased to this process for ``lease_seconds``; None if none is due."""
        free = (DeliveryRow.lease_until.is_(None)) | (DeliveryRow.lease_until < now)
        with self._write_lock, self._sessions.begin() as session:
            for row_id in session.scalars(select(DeliveryRow.id).where(
                    DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now, free)
                    .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id).limit(5)):
                claimed = session.execute(update(DeliveryRow).where(DeliveryRow.id == row_id, free,
                                                                    DeliveryRow.status == "pending")
                                          .values(lease_until=now + lease_seconds)).rowcount
                if claimed:  # another process may have taken it between the select and the update
                    row = session.get(DeliveryRow, row_id)
                    return {"id": row.id, "alert_id": row.alert_id, "key": row.idempotency_key, "url": row.url,
                            "action": row.action, "payload": row.payload, "attempts": row.attempts}
        return None

    def delivery_attempted(self, delivery_id: int, *, ok: bool, error: str = "", retry_at: float | None = None
                           ) -> str:
        """Record one attempt: delivered, retried at ``retry_at``, or (no ``retry_at``) dead-lettered."""
        with self._write_lock, self._sessions.begin() as session:
            row = session.get(DeliveryRow, delivery_id)
            row.attempts += 1
            row.lease_until = None
            row.last_error = error[:2000]
            if ok:
                row.status = "delivered"
            elif retry_at is not None:
                row.next_attempt_at = retry_at
            else:
                row.status = "dead"
                session.add(DeadLetterRow(alert_id=row.alert_id, url=row.url, payload=row.payload,
                                          attempts=row.attempts, last_error=row.last_error, created_at=utcnow()))
            if row.alert_id is not None and row.status != "pending":
                others = session.scalars(select(DeliveryRow.status).where(DeliveryRow.alert_id == row.alert_id,
                                                                          DeliveryRow.id != row.id)).all()
                statuses = {row.status, *others}
                state = "dead" if "dead" in statuses else "pending" if "pending" in statuses else "delivered"
                session.execute(update(AlertRow).where(AlertRow.id == row.alert_id).values(delivery=state))
            return row.status

    def next_delivery_due(self) -> float | None:
        with self._sessions() as session:
            return session.scalar(select(func.min(DeliveryRow.next_attempt_at)).where(DeliveryRow.status == "pending"))

    def pending_deliveries(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(DeliveryRow)
                                  .where(DeliveryRow.status == "pending")) or 0

    def deliveries(self, alert_id: int | None = None) -> list[dict]:
        query = select(DeliveryRow).order_by(DeliveryRow.id)
        if alert_id is not None:
            query = query.where(DeliveryRow.alert_id == alert_id)
        with self._sessions() as session:
            return [{"id": d.id, "alert_id": d.alert_id, "key": d.idempotency_key, "url": d.url, "status": d.status,
                     "attempts": d.attempts, "next_attempt_at": d.next_attempt_at, "last_error": d.last_error}
                    for d in session.scalars(query)]
