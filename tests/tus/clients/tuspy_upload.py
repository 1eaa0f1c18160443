"""Upload one file with tuspy, resuming from a URL store; kill itself at KILL_AT bytes.

Usage: python tuspy_upload.py ENDPOINT TOKEN FILE URL_STORE CHUNK_SIZE [KILL_AT]
Prints one JSON line per chunk: {"offset": N} (the first is the resumed offset).
"""

import json
import os
import signal
import sys

from tusclient import client
from tusclient.storage.filestorage import FileStorage

endpoint, token, path, store, chunk_size, *rest = sys.argv[1:]
kill_at = int(rest[0]) if rest else None
tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
uploader = tus.uploader(
    file_path=path,
    chunk_size=int(chunk_size),
    metadata={"filename": os.path.basename(path), "filetype": "application/octet-stream"},
    store_url=True,
    url_storage=FileStorage(store),
    upload_checksum=True,  # sha1 Upload-Checksum on every PATCH
)
print(json.dumps({"offset": uploader.offset, "url": uploader.url}), flush=True)
while uploader.offset < uploader.get_file_size():
    uploader.upload_chunk()
    print(json.dumps({"offset": uploader.offset}), flush=True)
    if kill_at is not None and uploader.offset >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup, no goodbye
