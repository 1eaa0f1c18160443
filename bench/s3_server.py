"""moto's S3 server, started with a bucket that already holds the benchmark's part objects.

    python bench/s3_server.py PORT BUCKET SESSIONS

Putting 400,000 objects through moto's HTTP front takes longer than the cleanup they
set up, so they go straight into the server's in-memory backend before it starts
serving. The benchmark's deletes still go over real HTTP with boto3. Prints
``ready`` once it serves.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

from bench.cleanup import PARTS, part_key


def main(port: int, bucket: str, sessions: int) -> None:
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(bucket, "us-east-1")
    for i in range(1, sessions + 1):
        for part in range(1, PARTS + 1):
            backend.put_object(bucket, part_key(i, part), b"")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
