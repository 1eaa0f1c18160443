"""schemathesis against the live OpenAPI document: no 500, no undocumented status or body.

The document is fetched from a real server (``live_server``) at its public URL,
and every operation is fuzzed with a bounded number of generated requests, sent
with a valid token and, for session operations, half the time on a real session.
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from portal.services.tokens import create_api_token
from tests.factories import make_user

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 25  # per operation


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_generated_requests_get_documented_answers(live_server, fs_storage):
    token = create_api_token(user=make_user("fuzzer")).plaintext
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/uploads/openapi.json")
    session_id = requests.post(
        f"{live_server.url}/uploads/sessions",
        json={"original_filename": "fuzz.bin", "total_size_bytes": 20 * 1024**2},
        headers=headers,
        timeout=30,
    ).json()["session_id"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5

    for operation in operations:

        @given(case=operation.as_strategy(), on_real_session=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,  # no example database left in the work tree
        )
        def fuzz(case, on_real_session):
            if on_real_session and "session_id" in (case.path_parameters or {}):
                case.path_parameters["session_id"] = session_id
            case.call_and_validate(
                base_url=live_server.url, headers=headers, checks=CHECKS, timeout=30
            )

        fuzz()
