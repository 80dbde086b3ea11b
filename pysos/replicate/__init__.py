"""Replication to S3-compatible object storage (the extra ``pysos[s3]``).

- :mod:`.client`    the six object-store calls behind one small class (boto3, imported lazily)
- :mod:`.remote`    the replica's layout, its MANIFEST (compare-and-swap) and log (history)
- :mod:`.uploader`  the replicator: reads a store as a reader, ships each step as a commit
- :mod:`.gc`        retention: the owner deletes what no kept commit needs
- :mod:`.restore`   restore (latest or ``at``) into a new directory; ``describe`` for info
- :mod:`.follow`    ``pysos follow URL DIR``: a local copy kept up to date for readers
- :mod:`.run`       the continuous loop, signals and exit codes
- :mod:`.__main__`  ``python -m pysos.replicate STORE URL ...``

Importing this package imports no boto3: only talking to a server does.
"""

from .restore import restore

__all__ = ["restore"]
