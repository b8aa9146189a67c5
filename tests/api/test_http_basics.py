"""Every response carries a request id; every error is a problem document."""


def test_unknown_route_is_a_problem(client) -> None:
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["requestId"] == response.headers["x-request-id"]


def test_request_id_is_echoed_when_sane(client) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
    assert generated != "bad id!" and len(generated) >= 12


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["database"] == "up"


def test_openapi_documents_the_operations(client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/data-sources" in spec["paths"]
    assert "/v1/members/{member_id}/tokens" in spec["paths"]


def test_missing_credentials_are_a_401_problem(client) -> None:
    response = client.get("/v1/data-sources")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_the_openapi_document_names_credentials_and_problems(client) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"apiKey", "memberToken"}
    members = spec["paths"]["/v1/members/{member_id}"]["get"]
    assert members["security"] == [{"apiKey": []}]
    mine = spec["paths"]["/v1/connections/{connection_id}"]["get"]
    assert mine["security"] == [{"memberToken": []}]
    for code in ("401", "403", "404", "422", "429", "500"):
        content = mine["responses"][code]["content"]
        assert list(content) == ["application/problem+json"], code
    assert "security" not in spec["paths"]["/healthz"]["get"]
    launch = spec["paths"]["/oauth/launch/{token}"]["get"]["responses"]
    assert "text/html" in launch["410"]["content"]


def test_a_wrong_method_names_every_method_the_path_answers(client) -> None:
    answer = client.request("PUT", "/v1/connections")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
