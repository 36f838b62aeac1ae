"""Who else has a ticket open, and who is typing on it, shared through the ticket's channel.

Nothing is stored. Every open ticket page (its event stream) announces its viewer on
`ticket:<id>` when it opens, again every `PRESENCE_REFRESH` seconds, and says goodbye when
it closes; typing is announced by the page itself (a small POST) while the operator types.
Each stream keeps its own `Roster` from these events and forgets a viewer not heard from
for `PRESENCE_TTL` seconds (a process that died, a laptop lid closed), a typist after
`TYPING_TTL`. So two web processes behind Redis see the same people, and a closed tab
disappears at once, or at the latest after the TTL.

Presence events have `"type": "presence"`. The widget's stream reads the same channel but
sends learners only messages read from the database, never these events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from helpdesk.adapters.pubsub import PubSub
from helpdesk.inbox.rendering import FORMATS
from helpdesk.models import Operator

PRESENCE_REFRESH = 10.0
PRESENCE_TTL = 30.0
TYPING_TTL = 8.0
# hello: a page opened (everybody answers with `viewing`); idle: stopped typing.
STATES = frozenset({"hello", "viewing", "typing", "idle", "left"})
TYPING_WHAT = frozenset({"reply", "note"})
# A browser tab's id, made by the page: only letters, digits, - and _.
TAB_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,40}$")


def presence_event(
    tab: str, operator: Operator, state: str, what: str | None = None
) -> dict[str, Any]:
    """The pub/sub event for one tab of one operator (no ticket content, no addresses)."""
    assert state in STATES
    return {
        "type": "presence",
        "tab": tab,
        "operator": operator.id,
        "name": operator.name,
        "state": state,
        "what": what if what in TYPING_WHAT else None,
    }


async def announce_presence(
    pubsub: PubSub,
    ticket_id: int,
    tab: str,
    operator: Operator,
    state: str,
    what: str | None = None,
) -> None:
    """Publish a tab's presence on the ticket's channel (to every web process)."""
    await pubsub.publish(f"ticket:{ticket_id}", presence_event(tab, operator, state, what))


@dataclass
class _Tab:
    operator_id: int
    name: str
    seen_until: float
    typing_until: float = 0.0
    typing_what: str | None = None


class Roster:
    """The tabs open on one ticket, as one stream has heard of them (times are monotonic)."""

    def __init__(self, own_tab: str) -> None:
        self.own_tab = own_tab
        self._tabs: dict[str, _Tab] = {}

    def apply(self, data: dict[str, Any], now: float) -> None:
        """Take in one presence event from the channel (malformed ones are ignored)."""
        tab, state = data.get("tab"), data.get("state")
        operator_id, name = data.get("operator"), data.get("name")
        if not isinstance(tab, str) or state not in STATES or tab == self.own_tab:
            return
        if state == "left":
            self._tabs.pop(tab, None)
            return
        if not isinstance(operator_id, int) or not isinstance(name, str):
            return
        entry = self._tabs.get(tab)
        if entry is None:
            entry = self._tabs[tab] = _Tab(operator_id, name[:100], now + PRESENCE_TTL)
        entry.seen_until = now + PRESENCE_TTL
        if state == "typing":
            entry.typing_until = now + TYPING_TTL
            entry.typing_what = data.get("what") if data.get("what") in TYPING_WHAT else "reply"
        elif state == "idle":
            entry.typing_until = 0.0

    def expire(self, now: float) -> None:
        """Forget tabs not heard from within the TTL."""
        for tab in [tab for tab, entry in self._tabs.items() if entry.seen_until <= now]:
            del self._tabs[tab]

    def next_change(self, now: float) -> float | None:
        """Seconds until a tab expires or stops typing by itself, if any will."""
        moments = [e.seen_until for e in self._tabs.values()]
        moments += [e.typing_until for e in self._tabs.values() if e.typing_until > now]
        return max(0.0, min(moments) - now) if moments else None

    def others(self, own_operator_id: int | None, now: float) -> list[dict[str, Any]]:
        """Other operators on the ticket, one entry each, typists first, then by name."""
        people: dict[int, dict[str, Any]] = {}
        for entry in self._tabs.values():
            if entry.operator_id == own_operator_id or entry.seen_until <= now:
                continue
            typing = entry.typing_what if entry.typing_until > now else None
            person = people.setdefault(
                entry.operator_id, {"name": entry.name, "initials": FORMATS.initials(entry.name)}
            )
            person["typing"] = person.get("typing") or typing
        return sorted(people.values(), key=lambda p: (p["typing"] is None, p["name"].lower()))
