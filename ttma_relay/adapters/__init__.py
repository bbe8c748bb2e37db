"""Everything that talks to Google or to the vendor; the rest of ``ttma_relay`` does not.

adapters/
├── deliveries.py     Firestore: the delivery state machine (claim → publish → mark),
│                     the call markers, reconcile's checkpoint
├── publisher.py      Pub/Sub: CallEventPublisher (the call-events topic)
├── archive_store.py  Cloud Storage: write-once objects, streamed recordings
├── call_index.py     Firestore: the queryable index of archived calls
└── ttma_api/         the vendor's HTTP API (TtmaClient and its errors)
"""
