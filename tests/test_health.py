"""The service answers its probes and errors in the contract's JSON shape."""


async def test_healthz_and_readyz_report_ok(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_unknown_path_is_json_not_found(client) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "Traceback" not in response.text


async def test_openapi_schema_is_served(client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Helpdesk"


async def test_landing_page_shows_the_service_is_running(client) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "Helpdesk is running" in response.text
    css = await client.get("/static/helpdesk.css")
    assert css.status_code == 200


async def test_body_errors_name_the_field_or_say_bad_request(client) -> None:
    headers = {"Authorization": "Bearer test-platform-key-0123456789"}
    missing = await client.put("/api/v1/learners/u-1", json={"email": "a@b.no"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["fields"]["name"] == "This field is required."
    for body in (b"", b"null", b"[]", b"{not json"):
        response = await client.put(
            "/api/v1/learners/u-1", content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, body
        assert response.json()["error"] == "bad_request"
