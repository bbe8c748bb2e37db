"""One module per function: the HTTP or Pub/Sub edge, and the decisions made there.

handlers/
├── ingest.py              the webhook: verify, claim, publish once, answer
├── archive_transcript.py  call.json, transcript.txt, transcript.json, the index
├── archive_recording.py   the MP3, streamed from a fresh signed URL
├── reconcile.py           the scheduled run (``ttma_relay.reconcile``) over HTTP
├── subscriber.py          what the archivers share: ArchiveDeps, RetryLater, the log line
└── wiring.py              each function's real clients, built once and warmed
"""
