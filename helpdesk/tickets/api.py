"""Operator ticket API (placeholder until the ticket controllers land)."""

from litestar import Controller


class TicketController(Controller):
    path = "/api/v1/tickets"
