"""The paged final-prefix listing of both adapters, and the final-key shape."""

import uuid

import pytest

from portal.models import new_id
from portal.storage import keys
from tests.compliance.helpers import FOREIGN_NAMES, own_key, plant


def test_iter_final_pages_lists_every_final_object_in_bounded_pages(storage):
    planted = {plant(storage, own_key(storage, new_id())) for _ in range(7)}
    planted.add(plant(storage, storage.final_prefix + "backup.tar"))
    plant(storage, storage.temp_prefix + "aa/not-final.part")

    pages = list(storage.iter_final_pages(page_size=3))

    assert all(1 <= len(page) <= 3 for page in pages)
    listed = [obj for page in pages for obj in page]
    assert {obj.key for obj in listed} == planted and len(listed) == len(planted)
    assert all(obj.size == 1 and obj.last_modified is not None for obj in listed)


def test_iter_final_pages_of_an_empty_prefix_yields_nothing(storage):
    assert list(storage.iter_final_pages()) == []


@pytest.mark.parametrize("name", ["report.pdf", "a b.txt", "../../etc", "ü.bin", "."])
def test_every_key_final_key_writes_names_its_file_id(name):
    file_id = new_id()
    assert keys.final_key_file_id("files/", keys.final_key("files/", file_id, name)) == file_id


@pytest.mark.parametrize("name", FOREIGN_NAMES)
def test_keys_of_another_shape_are_foreign(name):
    assert keys.final_key_file_id("files/", "files/" + name) is None


def test_a_final_key_under_another_prefix_is_foreign():
    key = keys.final_key("archive/", uuid.uuid4(), "x.pdf")
    assert keys.final_key_file_id("files/", key) is None
