"""Background delivery of the outbox: a task every minute, and a kick right after a reply.

`outbound.deliver_outbox` is scheduled every minute (the safety net that also runs the
retries), and `kick_delivery(runtime, broker)` starts a run at once after a reply was
committed, so a learner gets it within seconds. Both end in `deliver_all_due`; the claim
with a lease keeps them from ever sending the same row twice at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import asdict

from taskiq import AsyncBroker, InMemoryBroker, TaskiqDepends

from helpdesk.adapters.smtp import MailTransport, build_transport
from helpdesk.bootstrap import Runtime
from helpdesk.broker import background_task, provide_runtime
from helpdesk.outbound.delivery import deliver_all_due

log = logging.getLogger("helpdesk.outbound.tasks")


@background_task(
    "outbound.deliver_outbox", schedule=[{"cron": "* * * * *", "schedule_id": "deliver-outbox"}]
)
async def deliver_outbox(runtime: Runtime = TaskiqDepends(provide_runtime)) -> dict[str, int]:
    """Deliver everything that is due over the configured relay; returns the counts."""
    transport = build_transport(runtime.settings)
    try:
        report = await deliver_all_due(runtime, transport)
    finally:
        await transport.close()
    return asdict(report)


async def kick_delivery(
    runtime: Runtime,
    broker: AsyncBroker | None = None,
    *,
    transport: MailTransport | None = None,
) -> asyncio.Task[None] | None:
    """Start delivering now; call it after the transaction that queued mail has committed.

    With a Redis broker (`broker`, else the web process's `runtime.broker`) the task goes
    to a worker. Otherwise (the embedded mode, or no broker at hand) delivery runs in the
    background of this process; the returned task can be awaited by tests. Never raises:
    if the kick fails, the scheduled run a minute later delivers.
    """
    broker = broker or runtime.broker
    if broker is not None and not isinstance(broker, InMemoryBroker):
        try:
            await deliver_outbox.on(broker).kiq()
            return None
        except Exception:  # Redis away: deliver from here rather than wait a minute
            log.warning("could not send the delivery task; delivering in-process", exc_info=True)
    return _in_process(runtime).kick(transport)


class _InProcessDelivery:
    """At most one delivery run per runtime in this process, with one more queued behind it.

    A burst of replies then costs one or two runs instead of one per reply; the second
    run picks up rows queued while the first was busy.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = weakref.ref(runtime)
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self, transport: MailTransport | None) -> asyncio.Task[None]:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            self._again = True
            return task
        self._task = asyncio.create_task(self._run(transport), name="outbound-delivery")
        return self._task

    async def _run(self, transport: MailTransport | None) -> None:
        self._again = True
        while self._again and (runtime := self._runtime()) is not None:
            self._again = False
            active = transport or build_transport(runtime.settings)
            try:
                await deliver_all_due(runtime, active)
            except Exception:  # rows stay queued; the scheduled run tries again
                log.exception("in-process delivery failed")
            finally:
                await active.close()


_IN_PROCESS: dict[int, _InProcessDelivery] = {}


def _in_process(runtime: Runtime) -> _InProcessDelivery:
    key = id(runtime)
    delivery = _IN_PROCESS.get(key)
    if delivery is None or delivery._runtime() is not runtime:
        delivery = _IN_PROCESS[key] = _InProcessDelivery(runtime)
        weakref.finalize(runtime, _IN_PROCESS.pop, key, None)
    return delivery
