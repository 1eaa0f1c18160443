"""validate_key: which keys an adapter accepts, whatever their origin."""

import pytest

from portal.exceptions import InvalidStorageKey
from portal.storage.keys import validate_key

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
