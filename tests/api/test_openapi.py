"""The OpenAPI document matches the routes; API tests check every answer against it."""

import pytest
from openapi_spec_validator import validate

from portal import urls
from portal.openapi import openapi_document
from tests.api.conftest import UploadClient


def upload_routes() -> dict[str, set[str]]:
    """``{"/uploads/sessions/{session_id}": {"get", "delete"}, ...}`` from portal/urls.py."""
    routes = {}
    for pattern in urls.urlpatterns:
        route = str(pattern.pattern)
        # An included URLconf is tus (SPEC §13): its own protocol, not the JSON API.
        if route.startswith("uploads/") and not hasattr(pattern, "url_patterns"):
            template = "/" + route.replace("<str:", "{").replace(">", "}")
            routes[template] = {m.lower() for m in pattern.callback.allowed_methods}
    return routes


def test_document_is_valid_openapi_3_1():
    document = openapi_document()

    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_upload_route_and_method_is_documented_and_nothing_else():
    documented = {
        path: {method for method in item if method != "parameters"}
        for path, item in openapi_document()["paths"].items()
    }

    assert documented == upload_routes()


def test_every_authenticated_operation_documents_401_and_its_error_schema():
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or operation.get("security") == []:
                continue
            assert "401" in operation["responses"], f"{method} {path}"


@pytest.mark.django_db
def test_document_is_served_without_a_token():
    response = UploadClient(None).request("GET", "/uploads/openapi.json")

    assert response.status_code == 200
    assert response.json() == openapi_document()
