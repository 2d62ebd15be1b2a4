"""The serving layer: the server (predictions from the latest snapshot, appends to the log), the follower of
snapshots, and /api/stats. Never imports TensorFlow."""
