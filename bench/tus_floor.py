"""The floor for ``bench/tus.py --floor``: the leanest tus creation and PATCH.

The URLconf of ``bench.tus_floor_settings.Floor``, the production configuration
with only these two views. They serve only what tus-js-client needs for a new
upload and do only what any upload must: check the bearer token (one query),
stream the PATCH body into a temp part through the storage adapter (hashed,
O_DIRECT) and log one line. There are no sessions, parts, finalize or events, and
no resume. The portal's CPU per file above this floor is what its upload
bookkeeping costs (PEP 0028).
"""

import uuid

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from portal.auth import authenticate_request
from portal.logs import get_logger
from portal.services.chunks import release_connections
from portal.storage import get_storage
from portal.views.bodies import idle_timeout_body
from portal.views.tus import TUS_VERSION

log = get_logger(__name__)


def _tus(response: HttpResponse, offset: int) -> HttpResponse:
    response["Tus-Resumable"] = TUS_VERSION
    response["Upload-Offset"] = str(offset)
    return response


@csrf_exempt
def create(request):
    authenticate_request(request)
    response = HttpResponse(status=201)
    response["Location"] = f"/floor/{uuid.uuid4()}"
    return _tus(response, 0)


@csrf_exempt
def append(request, upload_id):
    authenticate_request(request)
    release_connections()  # as the portal does while a body arrives
    with idle_timeout_body(request) as body:
        stored = get_storage().write_temp_part(
            upload_id, 1, body, max_bytes=int(request.headers["Content-Length"])
        )
    log.info("part.received", upload_id=str(upload_id), size_bytes=stored.size)
    return _tus(HttpResponse(status=204), stored.size)


urlpatterns = [
    path("floor/", create),
    path("floor/<uuid:upload_id>", append),
]
