import pytest

from portal.services.sessions import compact_ranges


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ([], ""),
        ([1], "1"),
        ([1, 2, 3], "1-3"),
        ([1, 2, 3, 5, 7, 8], "1-3,5,7-8"),
        ([*range(1, 51), 52, *range(55, 101)], "1-50,52,55-100"),
    ],
)
def test_compact_ranges(numbers, expected):
    assert compact_ranges(numbers) == expected
