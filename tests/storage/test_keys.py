"""validate_key: which keys an adapter accepts, whatever their origin."""

import uuid

import pytest

from portal.exceptions import InvalidStorageKey
from portal.storage.keys import TempPartKey, parse_temp_part_key, temp_part_key, validate_key

PREFIXES = ("tmp/", "files/")


@pytest.mark.parametrize(
    "key",
    [
        "tmp/ab/0190-000001-f00d.part",
        "files/0190/report.pdf",
        "tmp/...",  # three dots is a name, not a step up
        "tmp/..a/b..",
        "tmp/.hidden",
        "tmp/..\n",  # a name ending in a newline is still just a name
        "tmp/a b/ü",
    ],
)
def test_clean_keys_under_a_prefix_are_accepted(key):
    assert validate_key(key, *PREFIXES) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "tmp/",
        "tmp",
        "/tmp/a",
        "tmp//a",
        "tmp/a/",
        "tmp/./a",
        "tmp/../files/a",
        "tmp/a/..",
        "tmp/a\\b",
        "tmp/a\x00",
        "tmpx/a",
        "other/a",
        None,
        b"tmp/a",
    ],
)
def test_unclean_keys_and_keys_outside_the_prefixes_are_refused(key):
    with pytest.raises(InvalidStorageKey):
        validate_key(key, *PREFIXES)


def test_a_key_outside_the_prefixes_names_them():
    with pytest.raises(InvalidStorageKey, match="outside tmp/, files/"):
        validate_key("other/a", *PREFIXES)


# -- parse_temp_part_key: the shape cleanup's storage sweep proves ownership by ------

SESSION = "0190a8f2-7c1e-7b3a-9d4e-5f6a7b8c9d0e"
GOOD = f"tmp/0e/{SESSION}-000003-{'ab' * 16}.part"


def test_a_key_temp_part_key_writes_parses_back_to_its_session_and_part():
    key = temp_part_key("tmp/", uuid.UUID(SESSION), 3)

    assert parse_temp_part_key(key, "tmp/") == TempPartKey(SESSION, 3)
    assert parse_temp_part_key(GOOD, "tmp/") == TempPartKey(SESSION, 3)


@pytest.mark.parametrize(
    "key",
    [
        "tmp/notmine.png",
        "tmp/ab/backup.tar",
        GOOD.upper(),
        GOOD.replace("tmp/0e/", "tmp/0f/"),  # shard is not the session's
        GOOD + ".bak",
        GOOD.replace(".part", ""),
        GOOD.replace("-000003-", "-000000-"),  # part 0 does not exist
        GOOD.replace("-000003-", "-00003-"),
        GOOD.replace("ab.part", "a.part"),  # 31 hex digits
        GOOD.replace("ab.part", "abc.part"),  # 33
        GOOD.replace("tmp/0e/", "tmp/0e/x/"),
        GOOD.replace("tmp/0e/", "tmp/"),
        GOOD.replace("tmp/", "files/"),  # another prefix
        GOOD.replace("tmp/", "tmp/tmp/"),
        f"tmp/{SESSION}/000003-{'ab' * 16}.part",  # an older layout
        GOOD.replace(SESSION, SESSION.replace("-", "")[:32] + "0e"),  # no dashes
        GOOD + "\n",
    ],
)
def test_every_other_key_is_not_the_portals(key):
    assert parse_temp_part_key(key, "tmp/") is None
