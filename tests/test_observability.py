"""What an operator running the service sees: readiness naming the broken part, Prometheus
metrics with queue figures, request ids, and JSON log lines without addresses."""

from __future__ import annotations

import io
import json
import logging

import httpx
import msgspec
from prometheus_client import generate_latest

from helpdesk.app import create_app
from helpdesk.bootstrap import build_runtime
from helpdesk.db import transaction
from helpdesk.models import OutboundEmail
from helpdesk.redaction import RedactingFilter
from helpdesk.structured_logs import JsonFormatter, RequestIdFilter
from tests.factories import T0, add_operator, add_ticket, bearer


def sample(metrics_text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        head, _, rest = metric.partition("{")
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if head == name and found == wanted:
            return float(value)
    return None


async def test_readyz_names_each_part_it_checked(client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "storage": "ok", "status": "ok"}


async def test_readyz_is_503_naming_redis_when_redis_is_unreachable(settings) -> None:
    broken = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")

    runtime = build_runtime(broken)
    try:
        app = create_app(broken, runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/readyz")
    finally:
        await runtime.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok" and body["redis"] != "ok"


async def test_readyz_is_503_when_the_data_directory_cannot_be_written(settings, tmp_path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    broken = msgspec.structs.replace(settings, data_dir=blocker)

    runtime = build_runtime(broken)
    try:
        app = create_app(broken, runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/readyz")
    finally:
        await runtime.close()
    assert response.status_code == 503
    assert response.json()["storage"] != "ok"


async def test_metrics_count_requests_by_route_template_and_show_the_outbox_depth(
    client, runtime
) -> None:
    token = await add_operator(runtime)
    ticket = await add_ticket(runtime)
    async with transaction(runtime.sessions) as session:
        for n in range(3):
            session.add(OutboundEmail(
                ticket_id=ticket.id, kind="reply", recipients=["kari@example.no"],
                rfc_message_id=f"depth-{n}@kurs.example", raw=b"", status="queued",
                next_attempt_at=T0, created_at=T0,
            ))
    before = sample((await client.get("/metrics")).text, "helpdesk_http_requests_total",
                    method="GET", route="/api/v1/tickets/{number}", status="200") or 0
    assert (await client.get(f"/api/v1/tickets/{ticket.number}", headers=bearer(token))).is_success
    text = (await client.get("/metrics")).text
    after = sample(text, "helpdesk_http_requests_total",
                   method="GET", route="/api/v1/tickets/{number}", status="200")
    assert after == before + 1
    assert sample(text, "helpdesk_outbox_emails", status="queued") == 3
    assert sample(text, "helpdesk_privacy_requests_overdue") == 0
    assert f"/api/v1/tickets/{ticket.number}" not in text  # templates, never real paths


async def test_metrics_need_the_token_when_one_is_configured(settings, runtime) -> None:
    guarded = msgspec.structs.replace(settings, metrics_token="metrics-secret-123456")
    runtime = build_runtime(guarded)
    try:
        app = create_app(guarded, runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            refused = await http.get("/metrics")
            wrong = await http.get("/metrics", headers=bearer("metrics-secret-000000"))
            allowed = await http.get("/metrics", headers=bearer("metrics-secret-123456"))
    finally:
        await runtime.close()
    assert refused.status_code == wrong.status_code == 401
    assert allowed.status_code == 200 and "helpdesk_http_requests_total" in allowed.text


async def test_every_response_carries_a_request_id_and_a_sane_one_is_kept(client) -> None:
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
    kept = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c21-0001"})
    assert kept.headers["x-request-id"] == "lb-7f3a9c21-0001"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert "<" not in hostile.headers["x-request-id"]


async def test_request_log_is_one_json_line_with_request_id_and_no_address(client) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("helpdesk.requests")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await client.put("/api/v1/learners/kari.nordmann@example.no", json={},
                         headers={"X-Request-ID": "req-1234567890"})
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["request_id"] == "req-1234567890"
    assert line["level"] == "info" and line["logger"] == "helpdesk.requests"
    assert "kari.nordmann" not in json.dumps(line)
    assert line["path"] == "/api/v1/learners/k***@example.no"
    assert line["status"] == 401 and line["route"] == "/api/v1/learners/{external_id}"


async def test_ingested_mail_is_counted_by_outcome(client, runtime) -> None:
    from helpdesk.inbound.pipeline import ingest_raw
    from tests.mail_factory import make_mail

    def created() -> float:
        return sample(generate_latest().decode(), "helpdesk_inbound_messages_total",
                      status="created") or 0

    before = created()
    await ingest_raw(runtime, make_mail(message_id="<counted@example.no>"), "test")
    await ingest_raw(runtime, make_mail(message_id="<counted@example.no>"), "test")
    assert created() == before + 1
    assert sample(generate_latest().decode(), "helpdesk_inbound_messages_total",
                  status="duplicate")
