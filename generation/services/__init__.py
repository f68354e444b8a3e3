"""Writes: everything that changes a corpus, a round, a job or a model version goes through a function here.

- jobs.py: the job runtime (rows, RQ, claim, progress, heartbeat, cancel, reconcile, the errors handlers raise)
- rounds.py: a round's lifecycle and its stages (the only writer of `Round.state`)
- corpus.py: uploads and ingestion
- export.py: datasets and manifests
- model_versions.py: registering base models
"""
