"""ASGI entry point for uvicorn workers: settings come from the environment."""

from litestar import Litestar

from helpdesk.app import create_app
from helpdesk.config import load_settings


def app_from_environment() -> Litestar:
    return create_app(load_settings())
