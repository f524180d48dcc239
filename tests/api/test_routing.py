"""What the routing gives every route: pages for lists (X-Pagination and RFC 8288 Link,
the body still the bare JSON array), 405 with Allow in the error envelope, and an app
that does not migrate its database but refuses requests until it is at this release's
schema."""

import json
import re

import pytest
from conftest import demo_items

from irtcat.api.app import close_app, create_app
from irtcat.api.routes.base import MAX_PAGE_SIZE, PAGE_SIZE
from irtcat.itembank.database import Database, head_revision, upgrade

LISTS = ["/v1/standards", "/v1/items", "/v1/tests", "/v1/public/tests"]


def _envelope(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert set(response.json) == {"error"}
    assert set(response.json["error"]) == {"code", "message", "details"}
    return response.json["error"]


def _links(response):
    return {relation: url for url, relation in
            re.findall(r'<([^>]+)>; rel="([a-z]+)"', response.headers.get("Link", ""))}


@pytest.mark.parametrize("path", LISTS)
def test_a_default_page_holds_the_whole_demo_list(api, path):
    key = None if path.startswith("/v1/public") else api.admin
    response = api.call("GET", path, key)
    assert response.status_code == 200 and isinstance(response.json, list)
    metadata = json.loads(response.headers["X-Pagination"])
    assert metadata["total"] == len(response.json) <= PAGE_SIZE
    assert metadata["total_pages"] == (1 if response.json else 0)


def test_pages_of_items_partition_the_list(api):
    """165 demo items (api/demo/items.json) in pages of 50: 50, 50, 50 and 15, in order,
    linked to one another."""
    whole = [item["id"] for item in api.call("GET", "/v1/items", api.admin).json]
    assert len(whole) == len(demo_items()["items"]) == 165
    seen, path, sizes = [], "/v1/items?page_size=50", []
    while path:
        response = api.call("GET", path, api.admin)
        assert response.status_code == 200
        sizes.append(len(response.json))
        seen += [item["id"] for item in response.json]
        metadata = json.loads(response.headers["X-Pagination"])
        assert (metadata["total"], metadata["total_pages"]) == (165, 4)
        links = _links(response)
        assert links["first"] == "/v1/items?page=1&page_size=50"
        assert links["last"] == "/v1/items?page=4&page_size=50"
        path = links.get("next")
    assert sizes == [50, 50, 50, 15] and seen == whole


def test_a_page_keeps_the_other_query_arguments(api):
    response = api.call("GET", "/v1/items?standard=AI-ML&page_size=3&page=2", api.admin)
    assert [item["standard"] for item in response.json] == ["AI-ML"] * 3
    assert _links(response)["prev"] == "/v1/items?standard=AI-ML&page=1&page_size=3"
    assert response.headers["ETag"]                     # the standard's bank, as before


def test_a_page_past_the_last_is_empty(api):
    response = api.call("GET", "/v1/tests?page=99", api.admin)
    assert response.status_code == 200 and response.json == []
    assert "page" not in json.loads(response.headers["X-Pagination"])


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=x", f"page_size={MAX_PAGE_SIZE + 1}",
                                   "page_size=0", "page_size=1.5"])
def test_page_arguments_out_of_range_are_400(api, query):
    error = _envelope(api.call("GET", f"/v1/items?{query}", api.admin), 400)
    assert error["code"] == "validation_error" and error["details"]["fields"]


def test_every_method_a_route_does_not_take_is_405_with_allow(api):
    taken = {}
    for rule in api.app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            taken.setdefault(rule.rule, set()).update(rule.methods)
    assert len(taken) > 15
    for rule, methods in taken.items():
        path = re.sub(r"<(?:int:)?[a-z_]+>", lambda m: "7" if "int:" in m.group() else "x",
                      rule)
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods:
            response = api.call(method, path, api.admin)
            assert _envelope(response, 405)["code"] == "method_not_allowed"
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
            assert allowed == methods, (method, path)


def test_the_app_does_not_migrate_and_refuses_until_upgraded(database_url):
    app = create_app({"DATABASE_URL": database_url, "QUOTAS": "off"})
    try:
        client = app.test_client()
        refused = _envelope(client.get("/v1/public/tests"), 503)
        assert refused["code"] == "not_ready" and "irtcat db upgrade" in refused["message"]
        assert refused["details"] == {"schema": None, "expected_schema": head_revision()}
        assert client.get("/v1/ready").status_code == 503          # readiness says so too
        assert client.get("/v1/openapi.json").status_code == 200
        database = Database(database_url)
        try:
            upgrade(database)
        finally:
            database.dispose()
        assert client.get("/v1/public/tests").status_code == 200
        assert client.get("/v1/ready").status_code == 200
    finally:
        close_app(app)

