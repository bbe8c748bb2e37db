"""The developer's tools around the functions: the same code on the real emulators.

    devstack/
    ├── stack/         ``make dev`` / ``dev-up`` / ``dev-down``: the whole pipeline locally
    ├── demo/          ``make demo``: a mixed batch of calls through it, and a report
    ├── soak/          ``make soak``: N calls under faults; was anything lost?
    ├── consumers/     downstream consumers' push subscriptions (``CONSUMERS=``), a receiver
    ├── emulators.py   the Firestore, Pub/Sub and Storage emulators: start, check, stop
    ├── functions.py   one function served by functions-framework, as Cloud Functions would
    ├── terraform_eval.py  ``terraform console`` offline (the deploy proof, consumers)
    └── paths.py       the repository root

The vendor itself is simulated by ``ttma_sandbox`` (its own package: a product of its own).
"""
