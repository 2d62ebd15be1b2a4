"""The state layer: the bucket (or folder), the log of labelled drawings, the database of facts, the lease,
the figures, upgrades of old stores, and the snapshot format: the contract between the learner and the servers."""
