"""Every portal system check, triggered by settings and compared by id."""

import pytest
from django.core import checks
from django.test import override_settings

MiB = 1024**2


def portal_messages() -> list[checks.CheckMessage]:
    return [message for message in checks.run_checks() if message.id.startswith("portal.")]


def portal_ids() -> set[str]:
    return {message.id for message in portal_messages()}


def test_defaults_raise_no_portal_messages():
    assert portal_messages() == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(
            {"PORTAL_CHUNK_SIZE_MIN": 9 * MiB, "PORTAL_CHUNK_SIZE_MAX": 8 * MiB},
            "portal.E001",
            id="E001-min-above-max",
        ),
        pytest.param({"PORTAL_CHUNK_SIZE": 100 * MiB}, "portal.E002", id="E002-default-above"),
        pytest.param({"PORTAL_CHUNK_SIZE": MiB}, "portal.E002", id="E002-default-below"),
        pytest.param(
            {"PORTAL_MAX_FILE_SIZE": 10_001 * 64 * MiB}, "portal.E003", id="E003-too-many-parts"
        ),
        pytest.param({"PORTAL_MAX_FILE_SIZE": 0}, "portal.E003", id="E003-no-size"),
        pytest.param({"PORTAL_SESSION_TTL_HOURS": 0}, "portal.E004", id="E004-ttl-zero"),
        pytest.param({"PORTAL_SESSION_TTL_HOURS": -1}, "portal.E004", id="E004-ttl-negative"),
        pytest.param({"PORTAL_CLEANUP_BATCH_SIZE": 0}, "portal.E005", id="E005-batch-zero"),
        pytest.param(
            {"PORTAL_RUNNER_ENDPOINT": "ftp://runner.example/events"},
            "portal.E006",
            id="E006-not-http",
        ),
        pytest.param(
            {"PORTAL_RUNNER_ENDPOINT": "runner.example/events"}, "portal.E006", id="E006-no-scheme"
        ),
        pytest.param(
            {"DEBUG": False, "PORTAL_RUNNER_ENDPOINT": "https://runner.example/events"},
            "portal.E007",
            id="E007-unsigned-in-production",
        ),
        pytest.param(
            {"DEBUG": True, "PORTAL_RUNNER_ENDPOINT": "https://runner.example/events"},
            "portal.W001",
            id="W001-unsigned-while-debugging",
        ),
        pytest.param({"PORTAL_STORAGE_BACKEND": "ftp"}, "portal.E009", id="E009-backend"),
        pytest.param({"PORTAL_TEMP_PREFIX": ""}, "portal.E010", id="E010-empty-temp"),
        pytest.param({"PORTAL_FINAL_PREFIX": "/"}, "portal.E010", id="E010-empty-final"),
        pytest.param(
            {"PORTAL_TEMP_PREFIX": "data/", "PORTAL_FINAL_PREFIX": "/data"},
            "portal.E010",
            id="E010-same",
        ),
        pytest.param({"PORTAL_TEMP_PREFIX": "../tmp/"}, "portal.E010", id="E010-escape"),
        pytest.param(
            {"PORTAL_STORAGE_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": ""},
            "portal.E011",
            id="E011-s3-without-bucket",
        ),
        pytest.param(
            {
                "PORTAL_STORAGE_BACKEND": "s3",
                "AWS_STORAGE_BUCKET_NAME": "uploads",
                "PORTAL_CHUNK_SIZE_MIN": MiB,
            },
            "portal.E012",
            id="E012-s3-small-chunks",
        ),
    ],
)
def test_inconsistent_settings_raise_their_check(settings, expected):
    with override_settings(**settings):
        messages = portal_messages()

    assert {message.id for message in messages} == {expected}
    message = messages[0]
    assert message.hint
    assert any(name in message.msg for name in settings if name != "DEBUG")


@pytest.mark.parametrize(
    "name",
    [
        "PORTAL_CHUNK_SIZE_MIN",
        "PORTAL_OUTBOX_BASE_DELAY_SECONDS",
        "PORTAL_OUTBOX_MAX_DELAY_SECONDS",
        "PORTAL_OUTBOX_MAX_ATTEMPTS",
        "PORTAL_OUTBOX_CONNECT_TIMEOUT_SECONDS",
        "PORTAL_OUTBOX_READ_TIMEOUT_SECONDS",
        "PORTAL_OUTBOX_BATCH_SIZE",
        "PORTAL_OUTBOX_CLAIM_LEASE_SECONDS",
        "PORTAL_CLEANUP_INTERVAL_MINUTES",
        "PORTAL_CLEANUP_GRACE_MINUTES",
        "PORTAL_FAILED_SESSION_RETENTION_DAYS",
        "PORTAL_OUTBOX_RETENTION_DAYS",
        "PORTAL_READY_TIMEOUT_SECONDS",
    ],
)
def test_out_of_range_values_raise_e008_naming_the_setting(name):
    with override_settings(**{name: -1}):
        messages = [m for m in portal_messages() if m.id == "portal.E008"]

    assert [m.msg.split(" ")[0] for m in messages] == [name]


def test_s3_with_a_bucket_and_default_chunks_is_clean():
    with override_settings(PORTAL_STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="uploads"):
        assert portal_messages() == []


def test_signed_runner_endpoint_is_clean():
    with override_settings(
        PORTAL_RUNNER_ENDPOINT="https://runner.example/events", PORTAL_RUNNER_AUTH_SECRET="s3cret"
    ):
        assert portal_messages() == []


def test_check_errors_are_errors_and_the_debug_one_a_warning():
    with override_settings(PORTAL_SESSION_TTL_HOURS=0):
        assert [m.level for m in portal_messages()] == [checks.ERROR]
    with override_settings(DEBUG=True, PORTAL_RUNNER_ENDPOINT="https://runner.example/events"):
        assert [m.level for m in portal_messages()] == [checks.WARNING]


@pytest.mark.parametrize(
    ("temp", "final"),
    [("tmp/", "tmp/files/"), ("tmp", "tmp/files"), ("data/files/tmp/", "data/files/")],
)
def test_nested_prefixes_are_an_error_naming_both_settings(temp, final):
    with override_settings(PORTAL_TEMP_PREFIX=temp, PORTAL_FINAL_PREFIX=final):
        messages = portal_messages()

    assert [message.id for message in messages] == ["portal.E013"]
    assert "PORTAL_TEMP_PREFIX" in messages[0].msg and "PORTAL_FINAL_PREFIX" in messages[0].msg
    assert isinstance(messages[0], checks.Error) and messages[0].hint


@pytest.mark.parametrize(("temp", "final"), [("tmp/", "tmpfiles/"), ("a/tmp/", "a/files/")])
def test_sibling_prefixes_sharing_characters_are_fine(temp, final):
    with override_settings(PORTAL_TEMP_PREFIX=temp, PORTAL_FINAL_PREFIX=final):
        assert portal_ids() == set()


@pytest.mark.parametrize("grace", [0, 4])
def test_a_grace_below_the_safe_floor_is_warned_with_the_reason(grace):
    with override_settings(PORTAL_CLEANUP_GRACE_MINUTES=grace):
        messages = portal_messages()

    assert [message.id for message in messages] == ["portal.W002"]
    assert isinstance(messages[0], checks.Warning)
    assert "PORTAL_CLEANUP_GRACE_MINUTES" in messages[0].msg and "clock" in messages[0].msg


def test_a_grace_at_the_floor_is_clean():
    with override_settings(PORTAL_CLEANUP_GRACE_MINUTES=5):
        assert portal_ids() == set()
