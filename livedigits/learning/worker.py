"""The `learn` role (Procfile `worker:`): the one process of a fleet that learns.

python -m livedigits.learning.worker      # on STORAGE_URL and DATABASE_URL
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from livedigits.config import Config
from livedigits.formation import postgres_refusal
from livedigits.learning.log_learner import (
    LogLearner,
)
from livedigits.learning.publisher import Publisher, announce_waiting, learner_waiting
from livedigits.pipeline.drawings import digit_from_text
from livedigits.state.database import LOG_CHANNEL, Database, DatabaseError
from livedigits.state.inbox import Inbox
from livedigits.state.journal import Journal, entry_of
from livedigits.state.lease import Lease
from livedigits.state.storage import StorageError, open_store

logger = logging.getLogger(__name__)


def main() -> None:
    """The `learn` role: take the learner's lease (waiting, models loaded, while another process holds it), then
    follow the log on STORAGE_URL and publish snapshots for servers, until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env()
    storage = open_store(config)
    refused = postgres_refusal(config)
    db = Database(config.database, config.learner_pool_size, config.db_connect_timeout, name="learner",
                  idle_seconds=config.db_idle_seconds, refused=refused)  # fmt: skip
    stop, wake = threading.Event(), threading.Event()

    def terminate(*_) -> None:
        # Heroku stops a dyno with SIGTERM and kills it 30 s later: finish the step, hand over, exit well before.
        stop.set()
        wake.set()
        signal.alarm(config.shutdown_seconds)  # a storage or database that hangs the hand-over cannot keep it alive

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, terminate)
    if refused:  # exiting would only have Heroku restart it into the same refusal, again and again
        logger.error(refused)
        stop.wait()
        return
    inbox = Inbox(wake=wake)  # what notifications carry (`heard`), taken by the learner as it looks for entries
    learner = LogLearner.load(config, Journal(storage), db, inbox)  # TensorFlow and the models: warm before the lease
    learner.standby_waits = lambda: learner_waiting(
        db, config.waiting_fresh_seconds
    )  # one database read every config.keep_every entries
    publisher = Publisher(storage, db, learner, background=True)
    lease = Lease(db)

    def heard(channel: str | None, payload: dict) -> None:
        # A server appended an entry (with the entry itself when it fits a notification), or the listener
        # (re)connected and may have missed some: look now.
        if channel == LOG_CHANNEL and isinstance(payload.get("number"), int):
            inbox.put(payload["number"], entry_of(payload.get("entry")), digit=digit_from_text(payload.get("digit")))
        wake.set()

    notified = None
    while not stop.is_set():
        if not lease.try_acquire():
            logger.info("another learner holds the lease: waiting as a standby")
            announced = 0.0
            while not stop.is_set() and not lease.try_acquire():
                if time.monotonic() - announced >= config.waiting_fresh_seconds / 4:
                    announce_waiting(db)
                    announced = time.monotonic()
                stop.wait(config.lease_poll_seconds)
            if stop.is_set():
                break
        try:
            learner.take_over()
        except (StorageError, DatabaseError) as error:
            logger.warning("cannot take over yet: %s", error)
            lease.release()
            stop.wait(config.lease_poll_seconds)
            continue
        if notified is None:
            notified = db.listen((LOG_CHANNEL,), heard)
        publisher.publish(learner.snapshot())
        logger.info("learner at version %d (%s, %r)", learner.version, config.storage_url, db)
        # Told of every entry, it still wakes for its heartbeat (a database write, no storage request).
        interval = config.heartbeat_seconds if notified else config.learn_interval
        learner.run(publisher.publish, wake, stop, interval, idle=publisher.idle, gap=config.publish_gap_seconds,
                    notified=notified, lease=lease)  # fmt: skip
    if lease.held:
        publisher.flush()
        learner.hand_over()
        logger.info("stopped at version %d, checkpoint written", learner.version)
    lease.release()
    learner.close()
    db.close()


if __name__ == "__main__":
    main()
