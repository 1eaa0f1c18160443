"""Deliver outbox events: claim due deliveries, POST them signed, record each result.

A pass repeats three steps until nothing is due:

1. **Claim** (one short transaction): pick due deliveries with ``SELECT … FOR UPDATE
   SKIP LOCKED``, stamp them with a fresh ``claim_token``, count the attempt and push
   ``next_attempt_at`` one lease ahead. A dispatcher that dies after this point leaves
   its deliveries due again when the lease runs out: claims expire, nothing is lost.
2. **Send** (no transaction): one signed POST per delivery with explicit timeouts,
   over one keep-alive ``requests.Session``.
3. **Record** (one short transaction): write each outcome only where the row still
   carries this claim's token, so a late result never overwrites a newer claim.

Delivery is at least once: a dispatcher killed between a receiver's answer and the
record step sends again after the lease. Receivers deduplicate on ``webhook-id``.
"""

import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
import structlog
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal import conf
from portal.db import claim_batch
from portal.models import OutboxDelivery, WebhookEndpoint
from portal.services.signing import webhook_headers

log = structlog.get_logger(__name__)

RETRY_AFTER_STATUSES = frozenset({429, 503})
# Seconds of a lease kept free after the last send, for recording the results.
RECORD_MARGIN_SECONDS = 5.0

Status = OutboxDelivery.Status


@dataclass(frozen=True)
class DispatchResult:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    # Endpoints switched off because they answered 410 Gone.
    disabled: int = 0
    # Claimed but handed back unsent, because the lease would have run out mid-send.
    released: int = 0
    # Results dropped because the claim had expired and another dispatcher holds the row.
    stale: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.as_dict().items())


@dataclass(frozen=True)
class Outcome:
    """What one attempt did to one delivery, before it is recorded."""

    delivery: OutboxDelivery
    status: str
    status_code: int | None = None
    error: str = ""
    next_attempt_at: datetime | None = None
    disable_endpoint: bool = False


class Undeliverable(Exception):
    """The delivery has nowhere to go (endpoint deleted or disabled, runner unset)."""


def dispatch_due_deliveries(*, now=None, batch_size=None, session=None, rng=None) -> DispatchResult:
    """Deliver every due delivery, one claimed batch at a time, and return the counts.

    ``now`` fixes the clock for the whole pass (tests); otherwise each batch reads the
    clock when it claims, so a long pass never hands out leases that already expired.
    """
    clock = (lambda: now) if now is not None else timezone.now
    batch_size = batch_size or conf.outbox_batch_size()
    rng = rng or random.Random()
    http = session or requests.Session()
    counts = Counter()
    try:
        while True:
            token, deliveries = claim_due_deliveries(now=clock(), limit=batch_size)
            if not deliveries:
                break
            counts["claimed"] += len(deliveries)
            counts.update(deliver_claimed(token, deliveries, clock=clock, session=http, rng=rng))
    finally:
        if session is None:
            http.close()
    return DispatchResult(**{f.name: counts[f.name] for f in fields(DispatchResult)})


def claim_lease() -> timedelta:
    """How long a claim holds its deliveries: the setting, but never less than one send."""
    connect, read = conf.outbox_timeouts()
    worst_send = connect + read + RECORD_MARGIN_SECONDS
    return max(conf.outbox_claim_lease(), timedelta(seconds=worst_send))


def claim_due_deliveries(*, now, limit) -> tuple[uuid.UUID, list[OutboxDelivery]]:
    """Claim up to ``limit`` due deliveries for one lease; return the token and the rows."""
    token = uuid.uuid4()
    with transaction.atomic():
        claim_batch(
            OutboxDelivery.objects.due(now),
            order_by="next_attempt_at",
            size=limit,
            values={
                "claim_token": token,
                "next_attempt_at": now + claim_lease(),
                "attempts": F("attempts") + 1,
                "updated_at": now,
            },
        )
    claimed = OutboxDelivery.objects.filter(claim_token=token).select_related("event", "endpoint")
    return token, list(claimed.order_by("next_attempt_at", "pk"))


def deliver_claimed(token, deliveries, *, clock, session, rng) -> Counter:
    """Send the claimed deliveries while the lease lasts, then record the outcomes."""
    connect, read = conf.outbox_timeouts()
    deadline = time.monotonic() + claim_lease().total_seconds() - RECORD_MARGIN_SECONDS
    disabled_endpoints = set()
    outcomes = []
    for index, delivery in enumerate(deliveries):
        # The first send always goes, so every claim makes progress.
        if index and time.monotonic() + connect + read > deadline:
            break
        if delivery.endpoint_id in disabled_endpoints:
            outcome = dead_outcome(delivery, "endpoint disabled")
        else:
            outcome = attempt(
                delivery, session=session, timeouts=(connect, read), clock=clock, rng=rng
            )
        if outcome.disable_endpoint:
            disabled_endpoints.add(delivery.endpoint_id)
        outcomes.append(outcome)
    unsent = deliveries[len(outcomes) :]
    return record_outcomes(token, outcomes, unsent, now=clock())


def attempt(delivery, *, session, timeouts, clock, rng) -> Outcome:
    """One signed POST of ``delivery``, classified into an outcome."""
    try:
        url, secret = target_of(delivery)
    except Undeliverable as exc:
        return dead_outcome(delivery, str(exc))
    started = time.monotonic()
    try:
        response = post(delivery, url=url, secret=secret, session=session, timeouts=timeouts)
    except requests.RequestException as exc:
        # The class only: the message may quote the URL, and URLs may carry credentials.
        return failure_outcome(delivery, error=type(exc).__name__, now=clock(), rng=rng)
    code = response.status_code
    if 200 <= code < 300:
        log.info(
            "event.dispatched",
            event_id=str(delivery.event_id),
            destination=delivery.destination,
            status_code=code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return Outcome(delivery, Status.DELIVERED, status_code=code)
    if code == 410:
        return dead_outcome(
            delivery,
            "HTTP 410",
            status_code=code,
            disable_endpoint=delivery.endpoint_id is not None,
        )
    now = clock()
    retry_after = None
    if code in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    return failure_outcome(
        delivery, error=f"HTTP {code}", status_code=code, now=now, rng=rng, retry_after=retry_after
    )


def target_of(delivery) -> tuple[str, str]:
    """(url, secret) of the delivery's destination, read now, so settings changes apply."""
    if delivery.destination == OutboxDelivery.RUNNER:
        url = conf.runner_endpoint()
        if not url:
            raise Undeliverable("runner endpoint not configured")
        return url, conf.runner_auth_secret()
    endpoint = delivery.endpoint
    if endpoint is None:
        raise Undeliverable("endpoint deleted")
    if not endpoint.is_active:
        raise Undeliverable("endpoint disabled")
    return endpoint.url, endpoint.secret


def post(delivery, *, url, secret, session, timeouts) -> requests.Response:
    event = delivery.event
    body = json.dumps(event.payload, separators=(",", ":")).encode()
    headers = webhook_headers(
        secret=secret,
        msg_id=str(event.pk),
        event_type=event.event_type,
        # The real send time, not the pass's ``now``: receivers check it against
        # their own clock to refuse replays.
        timestamp=int(time.time()),
        body=body,
    )
    return session.post(url, data=body, headers=headers, timeout=timeouts, allow_redirects=False)


def dead_outcome(delivery, error, *, status_code=None, disable_endpoint=False) -> Outcome:
    log.warning(
        "event.delivery_failed",
        event_id=str(delivery.event_id),
        destination=delivery.destination,
        attempt=delivery.attempts,
        next_attempt_at=None,
        error=error,
        dead=True,
    )
    return Outcome(
        delivery,
        Status.FAILED,
        status_code=status_code,
        error=error,
        disable_endpoint=disable_endpoint,
    )


def failure_outcome(delivery, *, error, now, rng, status_code=None, retry_after=None) -> Outcome:
    """Retry later, or give up when this was the last allowed attempt."""
    if delivery.attempts >= conf.outbox_max_attempts():
        return dead_outcome(delivery, error, status_code=status_code)
    if retry_after is not None:
        delay = min(retry_after, conf.outbox_max_delay())
    else:
        delay = retry_delay(delivery.attempts, rng=rng)
    next_attempt_at = now + delay
    log.warning(
        "event.delivery_failed",
        event_id=str(delivery.event_id),
        destination=delivery.destination,
        attempt=delivery.attempts,
        next_attempt_at=next_attempt_at.isoformat(),
        error=error,
        dead=False,
    )
    return Outcome(
        delivery,
        Status.PENDING,
        status_code=status_code,
        error=error,
        next_attempt_at=next_attempt_at,
    )


def retry_delay(attempt: int, *, rng) -> timedelta:
    """min(BASE·2^(attempt-1), MAX), jittered down by up to 10%.

    Jitter spreads the retries of a burst; jittering only downwards keeps every delay
    within the formula and under the cap.
    """
    base = conf.outbox_base_delay().total_seconds()
    cap = conf.outbox_max_delay().total_seconds()
    capped = min(base * 2 ** (attempt - 1), cap)
    return timedelta(seconds=capped * rng.uniform(0.9, 1.0))


def parse_retry_after(value, *, now) -> timedelta | None:
    """A ``Retry-After`` header (delay-seconds or HTTP-date) as a delay; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def record_outcomes(token, outcomes, unsent, *, now) -> Counter:
    """Write the outcomes and hand back the unsent rows, where this claim still holds them."""
    counts = Counter()
    held = OutboxDelivery.objects.filter(claim_token=token)
    delivered_by_code = defaultdict(list)
    with transaction.atomic():
        for outcome in outcomes:
            if outcome.status == Status.DELIVERED:
                delivered_by_code[outcome.status_code].append(outcome.delivery.pk)
                continue
            changes = {"status": outcome.status, "last_status_code": outcome.status_code}
            if outcome.next_attempt_at is not None:
                changes["next_attempt_at"] = outcome.next_attempt_at
            if held.filter(pk=outcome.delivery.pk).update(
                **changes, last_error=outcome.error[:500], claim_token=None, updated_at=now
            ):
                counts["retried" if outcome.status == Status.PENDING else "dead"] += 1
                if outcome.disable_endpoint:
                    counts["disabled"] += disable_endpoint(
                        outcome.delivery.endpoint_id, reason=outcome.error, now=now
                    )
            else:
                counts["stale"] += 1
        # Successes are the bulk of a batch: one UPDATE per status code.
        for code, ids in delivered_by_code.items():
            recorded = held.filter(pk__in=ids).update(
                status=Status.DELIVERED,
                delivered_at=now,
                last_status_code=code,
                last_error="",
                claim_token=None,
                updated_at=now,
            )
            counts["delivered"] += recorded
            counts["stale"] += len(ids) - recorded
        if unsent:
            # Not attempted after all: give the attempt back and make them due at once.
            counts["released"] += held.filter(pk__in=[d.pk for d in unsent]).update(
                claim_token=None, next_attempt_at=now, attempts=F("attempts") - 1, updated_at=now
            )
    if counts["stale"]:
        log.warning("event.claim_expired", claim_token=str(token), results_dropped=counts["stale"])
    return counts


def disable_endpoint(endpoint_id, *, reason, now) -> int:
    disabled = WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True).update(
        is_active=False, disabled_reason=f"{reason} at {now.isoformat()}", updated_at=now
    )
    if disabled:
        log.warning("webhook_endpoint.disabled", endpoint_id=str(endpoint_id), reason=reason)
    return disabled


def replay_dead_deliveries(*, deliveries, now=None) -> int:
    """Give dead (failed) deliveries a fresh start: pending, no attempts, due now."""
    now = now or timezone.now()
    return deliveries.dead().update(
        status=Status.PENDING,
        attempts=0,
        next_attempt_at=now,
        claim_token=None,
        last_error="",
        updated_at=now,
    )


def retry_now(*, deliveries, now=None) -> int:
    """Make pending deliveries due now, leaving alone those a dispatcher holds right now."""
    now = now or timezone.now()
    live_claim = Q(claim_token__isnull=False, next_attempt_at__gt=now)
    return (
        deliveries.filter(status=Status.PENDING)
        .exclude(live_claim)
        .update(next_attempt_at=now, updated_at=now)
    )
