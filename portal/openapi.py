"""The OpenAPI 3.1 document of the upload API, served at ``GET /uploads/openapi.json``.

``tests/api/test_openapi.py`` keeps it true: every upload route is documented,
and every status an API test observes is listed for its operation.
"""

from functools import cache

SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
PART_NUMBER = {
    "name": "part_number",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_name: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }


def _error(description: str) -> dict:
    return _json("Error", description)


UNAUTHORIZED = _error(
    "No, invalid or revoked bearer token (missing_token, invalid_token, revoked_token)."
)
NOT_FOUND = _error("Unknown id, not a UUID, or another user's session (not_found).")
STORAGE_DOWN = _error("Storage is unavailable; retry later (storage_unavailable).")


def _paths() -> dict:
    return {
        "/uploads/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Open an upload session for a new file",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SessionRequest")}},
                },
                "responses": {
                    "201": _json("Session", "Session created."),
                    "200": _json(
                        "Session", "The session created earlier with this idempotency_key."
                    ),
                    "400": _error(
                        "Invalid input (invalid_json, invalid_field, invalid_chunk_size, too_many_parts, "
                        "invalid_retention_class)."
                    ),
                    "401": UNAUTHORIZED,
                    "409": _error(
                        "idempotency_key already used for a different file (idempotency_key_reused)."
                    ),
                    "413": _error(
                        "total_size_bytes over PORTAL_MAX_FILE_SIZE (file_too_large) or body too large."
                    ),
                },
            }
        },
        "/uploads/sessions/{session_id}": {
            "parameters": [SESSION_ID],
            "get": {
                "operationId": "getSession",
                "summary": "Status, counters, received parts and, once complete, the file",
                "responses": {
                    "200": _json("Session", "The session."),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            },
            "delete": {
                "operationId": "abortSession",
                "summary": "Abort the session; its parts are deleted by cleanup",
                "responses": {
                    "204": {"description": "Aborted."},
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "409": _error("The session is complete (session_complete)."),
                    "410": _error(
                        "Already aborted, failed or expired (session_aborted, session_failed, session_expired)."
                    ),
                },
            },
        },
        "/uploads/sessions/{session_id}/parts/{part_number}": {
            "parameters": [SESSION_ID, PART_NUMBER],
            "put": {
                "operationId": "uploadPart",
                "summary": "Upload one part as the raw request body",
                "description": (
                    "Every part but the last is exactly chunk_size_bytes; the last holds the rest. "
                    "Content-Length is required. An optional X-Part-SHA256 (hex) or "
                    "Content-Digest (sha-256=:base64:) header is verified before the part counts."
                ),
                "parameters": [
                    {
                        "name": "Content-Length",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {
                        "name": "X-Part-SHA256",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    },
                    {
                        "name": "Content-Digest",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "responses": {
                    "201": _json("PartReceipt", "Part stored."),
                    "200": _json(
                        "PartReceipt", "Identical re-send of a received part; nothing changed."
                    ),
                    "400": _error(
                        "Bad part number or size (invalid_part_number, wrong_part_size, invalid_sha256)."
                    ),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "409": _error(
                        "Different content for a received part (part_conflict) or session complete (session_complete)."
                    ),
                    "410": _error(
                        "Session aborted, failed or expired (session_aborted, session_failed, session_expired)."
                    ),
                    "411": _error("Content-Length missing (length_required)."),
                    "413": _error("Body longer than the part (part_too_large)."),
                    "422": _error("Body does not match the checksum header (checksum_mismatch)."),
                    "503": STORAGE_DOWN,
                },
            },
        },
        "/uploads/sessions/{session_id}/finalize": {
            "parameters": [SESSION_ID],
            "post": {
                "operationId": "finalizeSession",
                "summary": "Assemble the parts into the stored file; idempotent",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("FinalizeRequest")}},
                },
                "responses": {
                    "200": _json("Session", "Complete; file holds the stored file."),
                    "400": _error("Invalid body (invalid_json, invalid_field, invalid_sha256)."),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "409": _error(
                        "Parts missing (missing_parts, with missing_parts as compact ranges)."
                    ),
                    "410": _error(
                        "Session aborted, failed or expired (session_aborted, session_failed, session_expired)."
                    ),
                    "413": _error("The JSON body is too large (body_too_large)."),
                    "422": _error(
                        "The file does not match sha256 (checksum_mismatch); the session has failed."
                    ),
                    "503": STORAGE_DOWN,
                },
            },
        },
        "/uploads/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {}},
                    }
                },
            }
        },
    }


def _schemas() -> dict:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "SessionRequest": {
            "type": "object",
            "required": ["original_filename", "total_size_bytes"],
            "additionalProperties": False,
            "properties": {
                "original_filename": {"type": "string", "minLength": 1, "maxLength": 255},
                "content_type": {"type": "string", "maxLength": 255},
                "total_size_bytes": {"type": "integer", "minimum": 1},
                "chunk_size_bytes": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Default PORTAL_CHUNK_SIZE; within PORTAL_CHUNK_SIZE_MIN..MAX.",
                },
                "idempotency_key": {"type": "string", "maxLength": 255},
                "retention_class": {
                    "type": "string",
                    "description": "A retention policy code (default: the default policy); "
                    "unknown: 400 invalid_retention_class.",
                    "examples": ["general", "financial"],
                },
            },
        },
        "FinalizeRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}},
        },
        "Session": {
            "type": "object",
            "required": [
                "session_id",
                "file_id",
                "status",
                "chunk_size_bytes",
                "total_parts",
                "total_size_bytes",
                "completed_parts",
                "bytes_received",
                "received_parts",
                "expires_at",
            ],
            "properties": {
                "session_id": {"type": "string", "format": "uuid"},
                "file_id": {"type": "string", "format": "uuid"},
                "status": {"enum": ["init", "in_progress", "complete", "failed", "aborted"]},
                "chunk_size_bytes": {"type": "integer"},
                "total_parts": {"type": "integer"},
                "total_size_bytes": {"type": "integer"},
                "completed_parts": {"type": "integer"},
                "bytes_received": {"type": "integer"},
                "received_parts": {"type": "string", "examples": ["1-50,52,55-100"]},
                "expires_at": {
                    **nullable_time,
                    "description": "last activity + PORTAL_SESSION_TTL_HOURS; null once terminal.",
                },
                "failure_reason": {"type": "string"},
                "file": {"oneOf": [_ref("StoredFile"), {"type": "null"}]},
            },
        },
        "StoredFile": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "filename": {"type": "string"},
                "content_type": {"type": "string"},
                "size_bytes": {"type": "integer"},
                "sha256": {"type": "string"},
                "storage": {
                    "type": "object",
                    "properties": {
                        "backend": {"type": "string"},
                        "bucket": {"type": "string"},
                        "key": {"type": "string"},
                    },
                },
                "retention": {
                    "type": "object",
                    "required": ["class", "expires_at"],
                    "properties": {
                        "class": {"type": ["string", "null"]},
                        "expires_at": {
                            **nullable_time,
                            "description": "stored_at + the class's retention; null: kept "
                            "indefinitely.",
                        },
                    },
                },
            },
        },
        "PartReceipt": {
            "type": "object",
            "properties": {
                "session_id": {"type": "string", "format": "uuid"},
                "part_number": {"type": "integer"},
                "size_bytes": {"type": "integer"},
                "sha256": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    }


@cache
def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ingest portal upload API",
            "version": "1.0.0",
            "description": 'Resumable chunked uploads. Errors are {"error": {"code", "message"}}.',
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }
