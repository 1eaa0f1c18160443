"""Faults injected into a real S3 adapter (moto's server behind it)."""


def refuse_one_key(storage, key):
    """Make moto's real DeleteObjects answer as S3 does when it refuses one key: the key
    is left out of the request and reported under ``Errors`` in the parsed answer."""

    def drop(params, **kwargs):
        objects = params["Delete"]["Objects"]
        objects[:] = [o for o in objects if o["Key"] != key]

    def report(parsed, **kwargs):
        parsed.setdefault("Errors", []).append(
            {"Key": key, "Code": "AccessDenied", "Message": "Access Denied"}
        )

    storage.client.meta.events.register("provide-client-params.s3.DeleteObjects", drop)
    storage.client.meta.events.register("after-call.s3.DeleteObjects", report)
