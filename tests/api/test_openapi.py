"""The generated OpenAPI document: valid, complete, and served at the same URL.

API tests check every answer against it (``tests/api/conftest.py``), and
``test_contract.py`` drives each limit it states one past the edge.
"""

import pytest
from openapi_spec_validator import validate

from tests.api.conftest import UploadClient, openapi_document

# SPEC §4: the upload operations, and nothing else.
OPERATIONS = {
    ("/uploads/sessions", "post"),
    ("/uploads/sessions/{session_id}", "get"),
    ("/uploads/sessions/{session_id}", "delete"),
    ("/uploads/sessions/{session_id}/parts/{part_number}", "put"),
    ("/uploads/sessions/{session_id}/finalize", "post"),
}


def test_document_is_valid_openapi_3_1():
    document = openapi_document()

    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_upload_operation_is_documented_and_nothing_else():
    documented = {
        (path, method) for path, item in openapi_document()["paths"].items() for method in item
    }

    assert documented == OPERATIONS


def test_every_operation_documents_401_and_every_error_lists_its_codes():
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            assert operation["security"] == [{"BearerToken": []}], f"{method} {path}"
            assert "401" in operation["responses"], f"{method} {path}"
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["x-error-codes"], f"{method} {path} {status}"


def test_optional_fields_are_documented_as_nullable():
    properties = openapi_document()["components"]["schemas"]["SessionRequest"]["properties"]

    for name in ("content_type", "chunk_size_bytes", "idempotency_key"):
        assert {"type": "null"} in properties[name]["anyOf"], name
    assert properties["total_size_bytes"]["type"] == "integer"


@pytest.mark.django_db
def test_document_is_served_without_a_token():
    response = UploadClient(None).client.get("/uploads/openapi.json")

    assert response.status_code == 200
    assert response.json() == openapi_document()
