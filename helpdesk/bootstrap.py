"""The one place that wires settings to real collaborators (cosmicpython's `bootstrap`).

HTTP handlers, CLI commands and taskiq tasks all get their database sessions and
adapters from a `Runtime`, so they run exactly the same services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpdesk.adapters.clock import Clock, SystemClock
from helpdesk.adapters.pubsub import PubSub, build_pubsub
from helpdesk.adapters.storage import FileStorage, LocalFileStorage
from helpdesk.config import Settings, task_queue_name
from helpdesk.db import create_engine, create_session_factory
from helpdesk.live import session_info, wait_for_published
from helpdesk.operators.notifications import settings_info
from helpdesk.tickets import service_levels
from helpdesk.widget.limits import MemoryRateLimiter, RateLimiter, build_limiter

# taskiq (and the aiohttp it imports) would cost every piped `helpdesk ingest` 0.2 s, and
# commands send no tasks. At run time the broker field is typed Any: Litestar's signature
# checks read the annotations of this dataclass when a handler takes the runtime.
if TYPE_CHECKING:
    from taskiq import AsyncBroker
else:
    AsyncBroker = Any


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    storage: FileStorage
    # Live updates (inbox and widget Server-Sent Events); Redis across processes.
    pubsub: PubSub
    # The taskiq broker while a web process runs (set by the app's lifespan); None in
    # commands and tests that send no tasks.
    broker: AsyncBroker | None = None
    # The widget's and form's rate limits; in Redis (shared by all processes) when set.
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)

    async def close(self) -> None:
        await wait_for_published()  # a command's last announcements still reach Redis
        await self.pubsub.close()
        await self.limiter.close()
        await self.engine.dispose()


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Create the engine and collaborators for these settings (no I/O until first use)."""
    engine = create_engine(settings.database_url)
    pubsub = build_pubsub(settings.redis_url, prefix=f"{task_queue_name()}:live:")
    return Runtime(
        settings=settings,
        engine=engine,
        # Sessions publish what they announce after commit (helpdesk.live), can write
        # operator notifications (helpdesk.operators.notifications) and know the
        # service-level policy of new tickets' due times (helpdesk.tickets.service_levels).
        sessions=create_session_factory(
            engine,
            info={
                **session_info(pubsub),
                **settings_info(settings),
                **service_levels.session_info(settings.service_levels),
            },
        ),
        clock=clock or SystemClock(),
        storage=LocalFileStorage(settings.data_dir / "files"),
        pubsub=pubsub,
        limiter=build_limiter(settings.redis_url, prefix=f"{task_queue_name()}:limits:"),
    )
