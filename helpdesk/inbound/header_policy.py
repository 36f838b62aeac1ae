"""The email policy inbound mail is read with: `policy.default`, parsing each field once.

With `policy.default` every read of a header field (`get`, `get_content_type`,
`get_param`, …) parses the field's text again, and the registry builds a new header class
for it each time; reading one message does that a few hundred times, about a fifth of
what ingest spends on a message (measured with cProfile on bench/ingest.py). Parsed header
objects are immutable, so one is kept per distinct (name, text); long texts — hostile or
oversized headers — are parsed every time rather than kept.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from functools import lru_cache
from typing import Any

_MAX_KEPT_TEXT = 2000
_KEPT_FIELDS = 4096


class _ParseOnceHeaderRegistry(HeaderRegistry):
    """`HeaderRegistry` that reuses header classes and parsed fields (same results)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._parsed = lru_cache(maxsize=_KEPT_FIELDS)(super().__call__)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(key)
        return cls

    def __call__(self, name: str, value: Any) -> BaseHeader:
        # Only plain text is kept: values set by code may be objects (not hashable).
        if type(value) is str and len(value) <= _MAX_KEPT_TEXT:
            return self._parsed(name, value)  # type: ignore[no-any-return]
        return super().__call__(name, value)  # type: ignore[no-any-return]


INBOUND_POLICY = policy.default.clone(header_factory=_ParseOnceHeaderRegistry())
