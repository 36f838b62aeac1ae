"""Course-platform sync API (placeholder until the sync controllers land)."""

from litestar import Controller


class LearnerSyncController(Controller):
    path = "/api/v1"
