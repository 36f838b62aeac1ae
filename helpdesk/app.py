"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from helpdesk import health, home, metrics_api
from helpdesk.bootstrap import Runtime, build_runtime
from helpdesk.broker import web_broker
from helpdesk.config import Settings
from helpdesk.deps import (
    provide_db_session,
    provide_operator,
    provide_runtime,
    provide_settings,
)
from helpdesk.error_handlers import EXCEPTION_HANDLERS
from helpdesk.inbox.routes import inbox_router
from helpdesk.inbox.service_level_display import configure_template_engine
from helpdesk.learners.api import LearnerSyncController
from helpdesk.outbound.api import outbound_api
from helpdesk.privacy.api import PrivacyRequestController, TicketPrivacyController
from helpdesk.privacy.pages import privacy_pages
from helpdesk.request_logging import request_logging_middleware
from helpdesk.resources import templates_dir
from helpdesk.tickets.actions_api import TicketActionController
from helpdesk.tickets.api import TicketController
from helpdesk.tickets.attachments import AttachmentController
from helpdesk.widget.api import widget_api
from helpdesk.widget.pages import support_router, widget_demo, widget_js

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings, runtime: Runtime | None = None) -> Litestar:
    """Build the web application; the database engine is created here, not at import."""
    runtime = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # The broker lives as long as the server; in the embedded mode it also runs the
        # schedule in this process (helpdesk.broker.web_broker).
        try:
            async with web_broker(settings, runtime) as broker:
                runtime.broker = broker
                yield
        finally:
            runtime.broker = None
            await runtime.close()

    return Litestar(
        route_handlers=[
            home.home,
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
            health.healthz,
            health.readyz,
            metrics_api.metrics,
            LearnerSyncController,
            TicketController,
            TicketActionController,
            AttachmentController,
            outbound_api,
            TicketPrivacyController,
            PrivacyRequestController,
            privacy_pages,
            # The learner widget (CORS to HELPDESK_WIDGET_ORIGINS) and the /support form.
            widget_js,
            widget_api,
            support_router,
            widget_demo,
            # The operator inbox: its own guards (session, CSRF, roles), security headers
            # and HTML error pages (helpdesk.inbox.routes).
            inbox_router,
        ],
        dependencies={
            "db_session": Provide(provide_db_session),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "operator": Provide(provide_operator),
            "runtime": Provide(provide_runtime, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_logging_middleware],
        lifespan=[lifespan],
        state=State({"runtime": runtime}),
        openapi_config=OpenAPIConfig(
            title="Helpdesk",
            version="1",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        template_config=TemplateConfig(
            directory=templates_dir(),
            engine=JinjaTemplateEngine,
            engine_callback=configure_template_engine,
        ),
        # Logging is configured by the process entry point (helpdesk.redaction), not by
        # Litestar, so every record passes the address-redacting filter.
        logging_config=None,
        debug=False,
    )
