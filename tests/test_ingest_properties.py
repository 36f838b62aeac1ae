"""Whatever bytes arrive, ingesting them ends in one of the five outcomes, never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_factory import make_mail

from helpdesk.bootstrap import Runtime
from helpdesk.inbound.outcome import INGEST_OUTCOMES
from helpdesk.inbound.pipeline import ingest_raw

VALID = make_mail(
    html="<p>Hei <b>der</b></p>",
    attachments=[("Åse.pdf", "application/pdf", b"%PDF-1.4", None)],
)


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    raw = bytearray(VALID)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["flip", "insert", "cut", "truncate"]))
        if action == "flip" and position < len(raw):
            raw[position] = draw(st.integers(0, 255))
        elif action == "insert":
            raw[position:position] = draw(st.sampled_from([b"\r\n", b"\x00", b"\n\n", b":", b"=?"]))
        elif action == "cut":
            del raw[position : position + draw(st.integers(1, 200))]
        else:
            del raw[position:]
    return bytes(raw)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.one_of(mutated_mail(), st.binary(max_size=2000)))
async def test_any_bytes_end_in_a_recorded_outcome(runtime: Runtime, raw: bytes) -> None:
    result = await ingest_raw(runtime, raw, "hypothesis")
    assert result.status in INGEST_OUTCOMES
    assert (result.ticket is None) == (result.status == "ignored") or result.status == "duplicate"
