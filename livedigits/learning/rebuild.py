"""Rebuild the database from the log: empty the database of STORAGE_URL and replay the whole log into it.

python -m livedigits.learning.rebuild      # stop the learner first: it would go on from facts that are gone
"""

from __future__ import annotations

import argparse
import time

from livedigits.config import Config
from livedigits.learning.log_learner import LogLearner
from livedigits.state.database import Database
from livedigits.state.journal import Journal
from livedigits.state.lease import Lease
from livedigits.state.storage import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    config = Config.from_env()
    database = Database(config.database, name="rebuild")
    lease = Lease(database)
    if not lease.try_acquire():  # a running learner would go on from facts that are no longer there
        parser.exit(1, "error: a learner is running on this database: stop it first (heroku ps:scale worker=0 web=0)\n")
    started = time.monotonic()
    database.clear()
    print(f"emptied {database!r} in {time.monotonic() - started:.2f} s; replaying the log of {config.storage_url}")
    learner = LogLearner.open(config, Journal(open_store(config)), database)
    seconds = time.monotonic() - started
    per_thousand = seconds / max(learner.version, 1) * 1000
    print(f"rebuilt {learner.version} entries in {seconds:.1f} s ({per_thousand:.1f} s per 1,000 entries)")
    learner.close()
    database.close()
    lease.release()


if __name__ == "__main__":
    main()
