"""Ingest portal: resumable chunked uploads, a durable webhook outbox, self-cleaning operations."""
