"""The test Redis server, shared by the broker, pub/sub and multi-process tests.

Register with `pytest_plugins = ["tests.peers.redis"]` in the test module. Needs
`HELPDESK_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/15`); without it the tests that
use it are skipped — except under `CI=true`, where a missing or unreachable server fails
the run.
"""

from __future__ import annotations

import os

import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def redis_url() -> str:
    """The test Redis server (skips without one, fails under CI or when unreachable)."""
    url = os.environ.get("HELPDESK_TEST_REDIS_URL", "").strip()
    if not url:
        if IN_CI:
            pytest.fail("CI=true but HELPDESK_TEST_REDIS_URL is not set", pytrace=False)
        pytest.skip("HELPDESK_TEST_REDIS_URL not set")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at HELPDESK_TEST_REDIS_URL is unreachable: {exc}", pytrace=False)
    return url
