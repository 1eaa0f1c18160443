"""CORS for browser tus clients: the allowed origin gets the tus headers, others nothing."""

import pytest
from django.core import checks
from django.test import override_settings

ORIGIN = "https://app.example.org"


@pytest.fixture
def allowed_origin():
    with override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN]):
        yield


def preflight(client, origin, method="PATCH"):
    return client.options(
        "/uploads/tus/0190",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset,"
            "upload-checksum,content-type",
        },
    )


@pytest.mark.usefixtures("allowed_origin")
def test_preflight_of_the_allowed_origin_allows_the_tus_methods_and_headers(client):
    response = preflight(client, ORIGIN)
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    allowed = response["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "tus-resumable", "upload-offset", "upload-checksum"):
        assert header in allowed
    assert {"HEAD", "PATCH", "DELETE", "POST"} <= set(
        response["Access-Control-Allow-Methods"].replace(" ", "").split(",")
    )


@pytest.mark.usefixtures("allowed_origin")
def test_answers_expose_the_tus_headers_to_the_allowed_origin_only(client):
    response = client.options("/uploads/tus/", headers={"Origin": ORIGIN})
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "upload-offset", "upload-length", "upload-expires"} <= exposed
    other = client.options("/uploads/tus/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other
    assert "Access-Control-Allow-Origin" not in preflight(client, "https://evil.example")


@pytest.mark.usefixtures("allowed_origin")
def test_cors_is_scoped_to_tus(client):
    response = client.get("/uploads/openapi.json", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response


def test_a_malformed_origin_is_a_check_error_naming_the_setting():
    with override_settings(CORS_ALLOWED_ORIGINS=["app.example.org"]):
        errors = [e for e in checks.run_checks() if e.id.startswith("corsheaders.")]
    assert errors
    assert "CORS_ALLOWED_ORIGINS" in errors[0].msg
