"""Workers: take due rows from the inbox, run the handlers, and record each outcome.

A worker claims rows with a lease and renews it while their handlers run, so a slow handler
keeps its row and a dead worker's rows are claimed again once the lease lapses. A handler
that raises is retried with exponential backoff and jitter; the defaults (16 attempts, 30 s
doubling to at most 6 h, each delay 80-100 % of that) spread the attempts over 31 to 39
hours, past Svix's own day of retries. Exhausted, the row is ``dead`` (``inbox replay``).

Synchronous handlers run in threads (one each, ``concurrency`` at once), asyncio handlers
on the loop. Whatever a handler raises, ``BaseException`` included (``SystemExit``,
``KeyboardInterrupt``, an ``asyncio.CancelledError`` of its own), fails its row with that
type and is retried; the worker goes on. A handler that runs past ``handler_timeout``
fails its row the same way (``HandlerTimeout``) and frees its slot: an asyncio handler is
cancelled; a thread cannot be stopped, so a synchronous one runs on unobserved (its
result ignored, its lease no longer renewed) while the row waits for its retry.

On shutdown (SIGTERM, SIGINT) the worker stops claiming and gives in-flight handlers
``shutdown_seconds`` to finish; rows still running then are released (pending again, the
attempt not counted).

The outcomes of attempts that end together are recorded in one transaction (one flush
to disk for all of them), and the rows they free are claimed together.

An outcome the inbox does not take (a lock held too long, a connection gone) is tried again
until it is recorded, while lease renewal keeps the lease: a worker that gave up would let
the lease lapse, and another worker would run a handler that had already succeeded.

Beside the claim loop run named side tasks (lease renewal, wake-up, retention); one that
fails with anything but StoreUnavailable stops the worker (:class:`SideTaskFailed`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import logging
import math
import os
import queue
import random
import secrets
import socket
import threading
import time
import traceback
import typing
from collections.abc import Iterator

from . import observe, tracing
from .errors import InvalidPayload, StoreUnavailable, UnknownEventType
from .events import parse_event
from .handlers import AsyncWebhookHandlers, WebhookHandlers
from .inbox import Failure, Inbox, LeaseLost, Outcome, Ran, Row, State, from_url
from .observe import current_webhook_id, fields

logger = logging.getLogger(__name__)

# Handlers at once per worker. Outcomes and claims are committed together, so a slot count
# this size also sets how many rows share a commit: at 4, two workers drained a backlog of
# no-op handlers at half the rate they do at 16 (docs/benchmarks.md, Bursts).
DEFAULT_CONCURRENCY = 16
# How long a synchronous handler's thread waits for the next call before it ends.
IDLE_THREAD_SECONDS = 60.0
# Outcomes recorded in one transaction at most.
SETTLE_BATCH = 256
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 16
DEFAULT_RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 6 * 3600.0
DEFAULT_SHUTDOWN_SECONDS = 30.0
# Far above any handler that should run in a webhook worker, well below "for ever": a hung
# call (a socket with no timeout) must not hold a slot and renew its lease indefinitely.
DEFAULT_HANDLER_TIMEOUT_SECONDS = 600.0
DEFAULT_RETENTION_SECONDS = 30 * 86400.0
PRUNE_EVERY_SECONDS = 600.0
# The first retention pass waits for the start-up's claims.
FIRST_PRUNE_SECONDS = 5.0
# How long an idle worker waits for news of a row before it looks anyway: a safety net for
# a notification lost while the database was away.
IDLE_SECONDS = 1.0
# Recording an outcome again after the inbox refused it: the first wait, doubling to the last.
RECORD_RETRY_FIRST_SECONDS = 0.05
RECORD_RETRY_MAX_SECONDS = 1.0
T = typing.TypeVar("T")


class SideTaskFailed(Exception):
    """A worker's side task (lease renewal, wake-up, retention) failed, so it stopped."""


class HandlerTimeout(Exception):
    """A handler ran past the worker's ``handler_timeout``: its row failed, to be retried."""


def retry_delay(
    attempt: int,
    base: float = DEFAULT_RETRY_BASE_SECONDS,
    cap: float = RETRY_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt ``attempt + 1``: ``base`` doubling per attempt up to ``cap``,
    each delay 80-100 % of that, so that rows failed together do not return together."""
    exact = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return exact * (rng or random).uniform(0.8, 1.0)


@dataclasses.dataclass
class Delivery:
    """The row a handler is running for (:func:`current_delivery`): its id, type and
    attempt, and :meth:`transaction` for writes that must happen exactly once."""

    webhook_id: str
    event_type: str
    attempt: int
    row_id: int
    lease_token: str | None
    inbox: Inbox
    ran: Ran
    committed: bool = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[typing.Any]:
        """A transaction on the inbox's own database (the driver's connection: sqlite3
        with ``?`` placeholders, psycopg with ``%s``) that also marks this row done. It
        commits only while this attempt's lease holds the row: an attempt that outlived its
        lease (a pause, a freeze) gets :class:`~.inbox.LeaseLost` at the end of the block
        and its writes roll back, so what the block writes commits exactly once. Once per
        attempt, and short: SQLite holds its write lock for the whole block."""
        if self.lease_token is None:
            raise LeaseLost("this row was claimed without a lease token")
        if self.committed:
            raise RuntimeError("this attempt's transaction committed already")
        with self.inbox.fenced(self.row_id, self.lease_token, ran=self.ran) as db:
            yield db
        self.committed = True


_current_delivery: contextvars.ContextVar[Delivery] = contextvars.ContextVar(
    "incident_webhooks_delivery"
)


def current_delivery() -> Delivery:
    """The delivery the calling handler runs for, when a :class:`Worker` runs it (in the
    handler's thread or task); LookupError elsewhere (the receiver without an inbox)."""
    try:
        return _current_delivery.get()
    except LookupError:
        raise LookupError(
            "no delivery: current_delivery() is for handlers run by an inbox's worker"
        ) from None


class Worker:
    """Processes an inbox's rows with ``handlers`` until stopped; see the module docstring."""

    def __init__(
        self,
        inbox: Inbox | str,
        handlers: WebhookHandlers | AsyncWebhookHandlers,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_base: float = DEFAULT_RETRY_BASE_SECONDS,
        shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS,
        retention_seconds: float | None = DEFAULT_RETENTION_SECONDS,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT_SECONDS,
        handlers_name: str | None = None,
    ) -> None:
        if not isinstance(handlers, WebhookHandlers | AsyncWebhookHandlers):
            raise TypeError(
                "handlers must be a WebhookHandlers or AsyncWebhookHandlers instance"
            )
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be 1 or more")
        if not lease_seconds >= 1 or not retry_base > 0 or not shutdown_seconds >= 0:
            raise ValueError(
                "lease_seconds must be 1 or more, retry_base above 0, shutdown_seconds 0 or more"
            )
        if not handler_timeout > 0:
            raise ValueError("handler_timeout must be above 0 seconds (inf: no limit)")
        self.inbox = from_url(inbox)
        self.handlers = handlers
        # Recorded with every attempt (``inbox show``): which code ran it.
        self.handlers_name = handlers_name or (
            f"{type(handlers).__module__}:{type(handlers).__qualname__}"
        )
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.shutdown_seconds = shutdown_seconds
        self.retention_seconds = retention_seconds
        self.handler_timeout = handler_timeout
        # Who holds a lease, in the database: the host and process, and this worker. Named
        # again by run(): an app built before its server forks runs the worker in a child.
        self.owner = _owner()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        # Outcomes waiting for the transaction that records them, and that transaction.
        self._outcomes: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._settling: asyncio.Task[None] | None = None
        # When stop() was called (monotonic): the shutdown's deadline counts from it.
        self.stopped_at: float | None = None
        # The database calls, apart from handlers that may block for minutes; one more for
        # the idle wait.
        self._db_threads = concurrent.futures.ThreadPoolExecutor(
            3, thread_name_prefix="inbox-db"
        )
        self._wait_thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="inbox-wait"
        )
        self.stopping = asyncio.Event()

    async def _db(self, call: typing.Callable[..., T], *args: typing.Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._db_threads, functools.partial(call, *args)
        )

    def stop(self) -> None:
        """Stop claiming and shut down (from the worker's own event loop)."""
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        self.stopping.set()

    async def run(self) -> None:
        """Claim and process rows until :meth:`stop`; then the graceful shutdown. The side
        tasks (lease renewal, wake-up, retention) run beside the claim loop; one that fails
        stops the worker: an ERROR names it, and this raises :class:`SideTaskFailed`."""
        self.owner = _owner()
        self._wake = asyncio.Event()
        self._threads = _HandlerThreads()
        side_tasks = {
            asyncio.create_task(self._renew_leases(), name="lease renewal"),
            asyncio.create_task(self._wake_up(), name="wake-up"),
        }
        if self.retention_seconds is not None:
            side_tasks.add(asyncio.create_task(self._retention(), name="retention"))
        logger.info("worker %s: processing %s", self.owner, self.inbox)
        failed: asyncio.Task[None] | None = None
        try:
            failed = await self._claim_and_run(side_tasks)
        finally:
            await self._shutdown()
            ending = {*side_tasks, *filter(None, [self._settling])}
            for task in ending:
                task.cancel()
            await asyncio.gather(*ending, return_exceptions=True)
            self._db_threads.shutdown(wait=False)
            self._wait_thread.shutdown(wait=False)
            logger.info("worker %s: stopped", self.owner)
        if failed is not None:
            raise SideTaskFailed(
                f"the worker's {failed.get_name()} task failed"
            ) from failed.exception()

    async def _claim_and_run(
        self, side_tasks: set[asyncio.Task[None]]
    ) -> asyncio.Task[None] | None:
        """The loop: claim what there are free slots for, start each row, wait for news (a
        row stored, a slot freed, a stop); the side task that failed, if one did."""
        stopping = asyncio.create_task(self.stopping.wait())
        unavailable_since: float | None = None
        try:
            while not self.stopping.is_set():
                failed = next((t for t in side_tasks if t.done()), None)
                if failed is not None:
                    logger.error(
                        "worker %s: its %s task failed; stopping the worker",
                        self.owner, failed.get_name(), exc_info=failed.exception(),
                    )  # fmt: skip
                    return failed
                self._wake.clear()
                free = self.concurrency - len(self._inflight)
                rows: list[Row] = []
                if free > 0:
                    try:
                        rows = await self._db(
                            self.inbox.claim, self.owner, self.lease_seconds, free
                        )
                    except StoreUnavailable as exc:
                        if unavailable_since is None:
                            unavailable_since = time.monotonic()
                            logger.error(
                                "worker %s: the inbox is unavailable: %s",
                                self.owner,
                                exc,
                            )
                        await asyncio.wait({stopping}, timeout=IDLE_SECONDS)
                        continue
                    if unavailable_since is not None:
                        logger.info("worker %s: the inbox answers again", self.owner)
                        unavailable_since = None
                for row in rows:
                    self._start(row)
                if rows and len(rows) == free:
                    continue  # there may be more; a free slot is checked next
                woken = asyncio.create_task(self._wake.wait())
                try:
                    await asyncio.wait(
                        {stopping, woken, *side_tasks, *self._inflight.values()},
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
        finally:
            stopping.cancel()
        return None

    def _start(self, row: Row) -> None:
        """The claim-and-run step's second half: a task for a claimed row."""
        previous = self._inflight.get(row.id)
        task = asyncio.create_task(
            self._process(row)
            if previous is None
            else self._process_after(previous, row)
        )
        self._inflight[row.id] = task
        task.add_done_callback(functools.partial(self._finished, row.id))

    # -- side tasks: each runs until the worker stops; one that raises stops the worker ----

    async def _renew_leases(self) -> None:
        """Lease renewal: every third of a lease, for every row in flight."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            ids = list(self._inflight)
            try:
                held = await self._db(
                    self.inbox.renew, self.owner, ids, self.lease_seconds
                )
            except StoreUnavailable as exc:
                logger.warning("worker %s: could not renew leases: %s", self.owner, exc)
                continue
            for row_id in set(ids) - held:
                if row_id in self._inflight:
                    logger.warning(
                        "worker %s: lost the lease on row %d (another worker may run it)",
                        self.owner, row_id,
                    )  # fmt: skip

    async def _wake_up(self) -> None:
        """Wake-up: news of a stored row (another process's NOTIFY, SQLite's data version),
        or IDLE_SECONDS without any, wakes the claim loop."""
        loop = asyncio.get_running_loop()
        while True:
            await loop.run_in_executor(
                self._wait_thread, self.inbox.wait_for_work, IDLE_SECONDS
            )
            self._wake.set()

    async def _retention(self) -> None:
        """Retention: done rows older than ``retention_seconds`` are deleted, every
        PRUNE_EVERY_SECONDS (the first pass after the start-up's claims)."""
        await asyncio.sleep(FIRST_PRUNE_SECONDS)
        while True:
            await self._prune()
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    def _finished(self, row_id: int, task: asyncio.Task[None]) -> None:
        if self._inflight.get(row_id) is task:
            del self._inflight[row_id]

    async def _process_after(self, previous: asyncio.Task[None], row: Row) -> None:
        """A row this worker claimed again while its last attempt's task is still in
        flight: that task recorded its outcome and is finishing (the row came due again at
        once), or it still waits to record it (the lease lapsed while the inbox refused).
        Run the new attempt only if, once that task is done, this claim still holds the
        row; a row that task finished is not run twice, and one it failed waits for its
        retry."""
        await asyncio.wait({previous})
        try:
            held = await self._db(
                self.inbox.renew, self.owner, [row.id], self.lease_seconds
            )
        except StoreUnavailable:
            return  # the lease lapses and the row is claimed again
        if row.id in held:
            await self._process(row)

    async def _shutdown(self) -> None:
        if not self._inflight:
            return
        logger.info(
            "worker %s: waiting up to %gs for %d handlers",
            self.owner, self.shutdown_seconds, len(self._inflight),
        )  # fmt: skip
        deadline = time.monotonic() + self.shutdown_seconds
        late: set[asyncio.Task[None]] = set()
        # Rows claimed with outcomes committing as the worker stopped start meanwhile.
        while self._inflight and not late:
            _, late = await asyncio.wait(
                list(self._inflight.values()),
                timeout=max(0.0, deadline - time.monotonic()),
            )
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=10)

    async def _prune(self) -> None:
        assert self.retention_seconds is not None
        try:
            removed = await self._db(self.inbox.prune, self.retention_seconds)
        except StoreUnavailable as exc:
            logger.warning("worker %s: retention: %s", self.owner, exc)
            return
        if removed:
            logger.info(
                "worker %s: retention removed %d done rows", self.owner, removed
            )

    async def _process(self, row: Row) -> None:
        current_webhook_id.set(row.webhook_id)
        extra = functools.partial(fields, row.webhook_id, event_type=row.event_type)
        ran = Ran(row.attempts, self.handlers_name, self.owner)
        delivery = Delivery(
            row.webhook_id, row.event_type, row.attempts, row.id, row.lease_token,
            self.inbox, ran,
        )  # fmt: skip
        _current_delivery.set(delivery)
        if row.attempts > self.max_attempts:
            # Claimed again after a lapsed lease each time: its worker died or hung.
            failure = Failure("LeaseLapsed", "the lease lapsed on the last attempt")
            await self._record(
                row, Outcome(row.id, "dead", self.owner, failure, None, ran)
            )
            logger.error(
                "webhook-id %s: dead after %d attempts whose leases lapsed",
                row.webhook_id, self.max_attempts, extra=extra("dead"),
            )  # fmt: skip
            return
        try:
            event: typing.Any = parse_event(row.body, row.headers)
        except UnknownEventType as exc:
            event = exc
        except InvalidPayload as exc:
            failure = Failure("InvalidPayload", str(exc))
            await self._record(
                row, Outcome(row.id, "invalid", self.owner, failure, None, ran)
            )
            observe.attempt(row.event_type, "invalid")
            logger.error(
                "webhook-id %s: invalid for this package's models, kept: %s",
                row.webhook_id, exc, extra=extra("invalid"),
            )  # fmt: skip
            return
        started = time.monotonic()
        result = "error"
        try:
            with tracing.process_span(
                row.webhook_id, row.event_type, row.headers.get("traceparent")
            ):
                await self._run_handler(event)
            result = "ok"
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The worker's own shutdown: give the row back unfinished.
                await asyncio.shield(self._release(row))
                raise
            await self._failed(row, exc, ran)  # raised by the handler itself
            return
        # Whatever a handler raises, SystemExit and KeyboardInterrupt included, is its
        # row's failure, recorded and retried: it must not end the worker (or the server
        # that runs it) and leave the row to lapse.
        except BaseException as exc:  # noqa: BLE001
            await self._failed(row, exc, ran)
            return
        finally:
            observe.handler(
                row.event_type, result, time.monotonic() - started,
                time.time() - (time.monotonic() - started) - row.received_at,
            )  # fmt: skip
        observe.attempt(row.event_type, "done")
        if delivery.committed:
            pass  # its own transaction marked the row done, with its writes
        elif not await self._record(row, Outcome(row.id, "done", ran=ran)):
            logger.warning(
                "webhook-id %s: the %s handler ran again after its lease lapsed; done once",
                row.webhook_id, row.event_type, extra=extra("duplicate"),
            )  # fmt: skip
            return
        outcome = "unknown_type" if isinstance(event, UnknownEventType) else "handled"
        logger.info(
            "webhook-id %s: handled %s (attempt %d)",
            row.webhook_id, row.event_type, row.attempts, extra=extra(outcome),
        )  # fmt: skip

    async def _record(self, row: Row, outcome: Outcome) -> bool:
        """Record an outcome, trying again for as long as the inbox refuses it (the row
        stays in flight, so lease renewal keeps its lease meanwhile)."""
        delay = RECORD_RETRY_FIRST_SECONDS
        refused: StoreUnavailable | None = None
        try:
            while True:
                try:
                    result = await self._settle(outcome)
                except StoreUnavailable as exc:
                    if refused is None:
                        logger.warning(
                            "webhook-id %s: could not record the outcome yet, trying again: %s",
                            row.webhook_id, exc,
                            extra=fields(row.webhook_id, "settle_retry", row.event_type),
                        )  # fmt: skip
                    refused = exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)
                    continue
                if refused is not None:
                    logger.info("webhook-id %s: outcome recorded", row.webhook_id)
                return result
        except asyncio.CancelledError:
            if refused is not None:
                # Stopped (the shutdown's deadline) with the outcome unrecorded: the lease
                # lapses and the row is claimed again, so its handler may run again.
                logger.error(
                    "webhook-id %s: stopped before the outcome was recorded: %s",
                    row.webhook_id, refused, extra=fields(row.webhook_id, "settle_failed", row.event_type),
                )  # fmt: skip
            raise

    def _settle(self, outcome: Outcome) -> asyncio.Future[bool]:
        """Queue ``outcome`` for the next transaction that records outcomes: the first
        starts one; those queued while it commits share the next."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, future))
        if self._settling is None or self._settling.done():
            self._settling = asyncio.create_task(self._settle_queued())
        return future

    async def _settle_queued(self) -> None:
        batch: list[tuple[Outcome, asyncio.Future[bool]]] = []
        try:
            while self._outcomes:
                batch = self._outcomes[:SETTLE_BATCH]
                del self._outcomes[:SETTLE_BATCH]
                # The rows for the slots these outcomes free are claimed in the same
                # transaction (none once stopping).
                claim = 0 if self.stopping.is_set() else len(batch)
                try:
                    results, rows = await self._db(
                        functools.partial(
                            self.inbox.settle, [o for o, _ in batch], owner=self.owner,
                            lease_seconds=self.lease_seconds, claim=claim,
                        )
                    )  # fmt: skip
                except StoreUnavailable as exc:
                    _settled(batch, exc)  # each row's task tries again after its delay
                    continue
                except Exception as exc:  # noqa: BLE001 - handed to the rows' tasks
                    if len(batch) == 1:
                        _settled(batch, exc)
                        continue
                    # An outcome the database refuses (a value, a bug) must not fail every
                    # row of its batch and leave them all to lapse: each alone.
                    for one in batch:
                        try:
                            _settled(
                                [one], (await self._db(self.inbox.settle, [one[0]]))[0]
                            )
                        except Exception as alone:  # noqa: BLE001 - that row's own
                            _settled([one], alone)
                    continue
                for row in rows:
                    self._start(row)  # before the tasks whose slots they take end
                _settled(batch, results)
        finally:  # cancelled: the worker is stopping, and nobody waits for these
            for _, future in [*batch, *self._outcomes]:
                future.cancel()

    async def _run_handler(self, event: typing.Any) -> None:
        handlers = self.handlers
        if isinstance(handlers, AsyncWebhookHandlers):
            running: typing.Awaitable[None] = (
                handlers.on_unknown(event.event_type, event.payload)
                if isinstance(event, UnknownEventType)
                else handlers.dispatch(event)
            )
        else:
            running = _in_thread(
                self._threads, functools.partial(_call_sync, handlers, event)
            )
        try:
            seconds = self.handler_timeout
            async with asyncio.timeout(
                seconds if math.isfinite(seconds) else None
            ) as limit:
                await running
        except TimeoutError:
            if limit.expired():
                raise HandlerTimeout(
                    f"the handler ran past the worker's handler timeout "
                    f"({self.handler_timeout:g}s)"
                ) from None
            raise  # the handler's own TimeoutError

    async def _failed(self, row: Row, exc: BaseException, ran: Ran) -> None:
        failure = Failure(
            type(exc).__qualname__,
            str(exc)[:2000],
            "".join(traceback.format_exception(exc))[-20000:],
        )
        last = row.attempts >= self.max_attempts
        retry_at = (
            None if last else time.time() + retry_delay(row.attempts, self.retry_base)
        )
        state: State = "dead" if last else "failed"
        await self._record(
            row, Outcome(row.id, state, self.owner, failure, retry_at, ran)
        )
        if isinstance(exc, LeaseLost):
            logger.warning(
                "webhook-id %s: the %s handler's transaction lost its lease (attempt %d): "
                "its writes were rolled back",
                row.webhook_id, row.event_type, row.attempts,
                extra=fields(row.webhook_id, "lease_lost", row.event_type),
            )  # fmt: skip
            return
        observe.attempt(row.event_type, "dead" if last else "failed")
        if last:
            logger.error(
                "webhook-id %s: the %s handler raised on attempt %d of %d; dead",
                row.webhook_id, row.event_type, row.attempts, self.max_attempts,
                exc_info=exc, extra=fields(row.webhook_id, "dead", row.event_type),
            )  # fmt: skip
        else:
            logger.warning(
                "webhook-id %s: the %s handler raised on attempt %d; retried in %.0fs",
                row.webhook_id, row.event_type, row.attempts, (retry_at or 0) - time.time(),
                exc_info=exc, extra=fields(row.webhook_id, "handler_error", row.event_type),
            )  # fmt: skip

    async def _release(self, row: Row) -> None:
        try:
            await self._db(self.inbox.release, row.id, self.owner)
        except StoreUnavailable:
            return  # the lease lapses instead
        logger.warning(
            "webhook-id %s: released unfinished at shutdown", row.webhook_id,
            extra=fields(row.webhook_id, "interrupted", row.event_type),
        )  # fmt: skip


def _settled(
    batch: list[tuple[Outcome, asyncio.Future[bool]]],
    results: list[bool] | BaseException,
) -> None:
    for n, (_, future) in enumerate(batch):
        if future.done():
            continue  # its task was cancelled meanwhile
        if isinstance(results, BaseException):
            future.set_exception(results)
        else:
            future.set_result(results[n])


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class _HandlerThreads:
    """Threads for synchronous handlers, one per handler running, each a daemon (a handler
    that never returns must not keep the process alive). A thread whose handler returned
    waits up to IDLE_THREAD_SECONDS for the next call, instead of a thread being started
    for each (a start costs more than a small handler); a hung handler keeps only its own
    thread, never a slot of a pool that others wait for."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call that none has been promised yet
        self._pid = os.getpid()

    def run(
        self,
        call: typing.Callable[[], None],
        then: typing.Callable[[BaseException | None], None],
    ) -> None:
        """``call`` in a thread, then ``then`` with what it raised (None if nothing), once
        that thread is free for the next call."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's threads are not here
                self._pid, self._idle = os.getpid(), 0
            promised = self._idle > 0
            if promised:
                self._idle -= 1
        self._calls.put((call, then))
        if not promised:
            threading.Thread(
                target=self._serve, name="inbox-handler", daemon=True
            ).start()

    def _serve(self) -> None:
        while True:
            try:
                call, then = self._calls.get(timeout=IDLE_THREAD_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue  # every idle thread was promised a call: this one takes one
            error: BaseException | None = None
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - handed to the row's task
                error = exc
            with self._lock:
                self._idle += 1
            then(error)


_Call = tuple[typing.Callable[[], None], typing.Callable[[BaseException | None], None]]


def _in_thread(
    threads: _HandlerThreads, call: typing.Callable[[], None]
) -> asyncio.Future[None]:
    """``call`` in a handler thread, with this context; the future has its outcome,
    whatever it raised."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    context = contextvars.copy_context()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return  # timed out or cancelled meanwhile: nobody waits for it
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def then(error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(settle, error)

    threads.run(functools.partial(context.run, call), then)
    return future


def _call_sync(handlers: WebhookHandlers, event: typing.Any) -> None:
    if isinstance(event, UnknownEventType):
        handlers.on_unknown(event.event_type, event.payload)
    else:
        handlers.dispatch(event)
