"""The 403 of a key of the wrong role names the role it needs with its article."""


def test_an_admin_route_asks_for_an_admin_key(api):
    response = api.call("GET", "/v1/standards", api.delivery)
    assert response.status_code == 403
    assert "needs an admin key" in response.json["error"]["message"]
