"""What the parts agree on, with no I/O: pure functions and data, no client of anything.

contract/
├── messages.py          the Pub/Sub message: data bytes and attributes (docs/schema/v1)
├── call_event.py        decoding a Pub/Sub push (CloudEvent) into a CallEvent
├── call_keys.py         a call's path-safe key and its archive prefix
├── party_numbers.py     the other party's number as a keyed hash (``forget --phone``)
├── transcript_turns.py  ``[Agent] … [Caller] …`` → turns
├── ended_reasons.py     the vendor's end reasons, the one list
├── timestamps.py        the one timestamp format (ISO 8601 UTC, milliseconds, ``Z``)
└── sample_delivery.py   a realistic ``call.ended`` delivery (smoke tests, the sandbox)
"""
