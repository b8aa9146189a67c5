"""searchDataSources and getDataSource over HTTP."""

from tests.conftest import MemberCtx, TenantCtx


def test_bundled_sandbox_sources_are_listed(client, member: MemberCtx) -> None:
    page = client.get("/v1/data-sources", headers=member.headers).json()
    ids = [item["id"] for item in page["items"]]
    assert {"sandbox-clinic", "sandbox-insurer", "sandbox-lab"} <= set(ids)
    assert "sandbox-retired-clinic" not in ids
    assert page["total"] == len(ids)


def test_search_filters_and_shapes(client, tenant: TenantCtx) -> None:
    body = client.get(
        "/v1/data-sources", params={"query": "sandbox lab", "type": "LAB"}, headers=tenant.headers
    ).json()
    assert [i["id"] for i in body["items"]] == ["sandbox-lab"]
    item = body["items"][0]
    assert item["category"] == "OAUTH" and item["type"] == "LAB"
    assert set(item) >= {"id", "name", "category", "type", "aliases", "address", "lat", "lon"}
    assert "fhirBaseUrl" not in item and "settings" not in item  # server-side only
    near = client.get(
        "/v1/data-sources", params={"near": "62701", "radius": 20}, headers=tenant.headers
    ).json()
    assert {i["id"] for i in near["items"]} == {"sandbox-clinic", "sandbox-pharmacy"}
    distances = [i["distanceMiles"] for i in near["items"]]
    assert distances == sorted(distances) and distances[-1] < 20


def test_get_data_source_and_not_found(client, member: MemberCtx) -> None:
    got = client.get("/v1/data-sources/sandbox-clinic", headers=member.headers)
    assert got.status_code == 200 and got.json()["name"] == "Sandbox Community Clinic"
    retired = client.get("/v1/data-sources/sandbox-retired-clinic", headers=member.headers)
    assert retired.json()["retired"] is True
    missing = client.get("/v1/data-sources/nope", headers=member.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "UNKNOWN_DATA_SOURCE"


def test_bad_search_input_is_a_problem(client, member: MemberCtx) -> None:
    for params in ({"type": "HOSPITAL"}, {"limit": 0}, {"near": "nowhere"}, {"radius": 5}):
        response = client.get("/v1/data-sources", params=params, headers=member.headers)
        assert response.status_code in (400, 422), params
        assert response.headers["content-type"] == "application/problem+json"
