# The upload API's client fixtures, for the retention_class tests.
from tests.api.conftest import chunk_size, small_limits, uploader  # noqa: F401
