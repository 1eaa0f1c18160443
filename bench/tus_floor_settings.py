"""The configuration of ``bench/tus.py --floor``: production, ``bench.tus_floor`` as URLconf."""

from boot.settings import Production


class Floor(Production):
    ROOT_URLCONF = "bench.tus_floor"
