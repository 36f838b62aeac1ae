"""ASGI entry point for uvicorn workers: settings come from the environment."""

from litestar import Litestar

from helpdesk.app import create_app
from helpdesk.config import load_settings
from helpdesk.redaction import configure_logging


def app_from_environment() -> Litestar:
    """The app of one `helpdesk serve` worker, logging through the redacting filter."""
    settings = load_settings()
    configure_logging(settings.log_format)
    return create_app(settings)
