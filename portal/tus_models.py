"""The tus model (SPEC §13): the protocol state of a session created over ``/uploads/tus/``.

Imported by ``portal.models``, which is where Django finds it.
"""

from django.db import models

from portal.models import TimestampedModel, UploadSession


class TusUpload(TimestampedModel):
    """The tus state of an ``UploadSession`` created over ``/uploads/tus/`` (SPEC §13).

    Bytes of a PATCH go into the session's ``UploadPart`` rows, one per chunk; the
    bytes past the last whole chunk are the *tail*: one temp object, written with a
    temp-part key of part ``tail_part_number``, so the offset a client resumes from
    is ``bytes_received + tail_size`` and survives a crash of either side. A tail is
    current only while its part has not been counted (``tail_part_number`` is the
    next part); a stale pointer is ignored and its object deleted.
    """

    session = models.OneToOneField(UploadSession, on_delete=models.CASCADE, related_name="tus")
    # Raw Upload-Metadata header, echoed by HEAD as tus requires.
    metadata = models.TextField(blank=True)
    is_partial = models.BooleanField(default=False)
    is_final = models.BooleanField(default=False)
    tail_key = models.CharField(max_length=1024, blank=True)
    tail_size = models.BigIntegerField(default=0)
    tail_part_number = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"tus upload of {self.session_id}"
