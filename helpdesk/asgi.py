"""ASGI entry point for uvicorn workers: settings come from the environment."""

from litestar import Litestar

from helpdesk.app import create_app
from helpdesk.config import load_settings
from helpdesk.process_memory import freeze_startup_objects
from helpdesk.redaction import configure_logging


def app_from_environment() -> Litestar:
    """The app of one `helpdesk serve` worker, logging through the redacting filter."""
    settings = load_settings()
    configure_logging(settings.log_format)
    app = create_app(settings)
    freeze_startup_objects()
    return app
