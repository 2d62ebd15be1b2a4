"""gunicorn's settings that depend on the role, and the platform's lifecycle (the Procfile's `web:` command names
this file).

Workers: gunicorn takes WEB_CONCURRENCY (Heroku sets it from the dyno's memory) unless told otherwise.
A `serve` worker is light (numpy, no TensorFlow: ~140 MB), so it takes as many as that says. An `all`
worker holds TensorFlow and a learner (~820 MB), and two learners in one dyno would only repeat each
other's work: one worker, whatever WEB_CONCURRENCY says. Threads per worker: Config.threads.

Stopping: Heroku sends SIGTERM to every process of the dyno and kills them 30 s later. At SIGTERM a worker's
requests that wait for the learner answer at once (202: their entries are durable), and an `all` learner stops
between entries and leaves a checkpoint at its version, while the requests in flight finish. graceful_timeout
(Config.shutdown_seconds) bounds it all: the master kills what is left then, so SIGTERM to exit stays under 25 s.
Binding: the master binds $PORT before any worker imports the app, so Heroku's 60 s boot limit is met in about
a second; the app answers as soon as its worker has imported it, while an `all` learner loads and replays.
"""

import signal

from livedigits.config import Config

settings = Config.from_env()
# numpy, Pillow and TensorFlow release the GIL: threads serve concurrent requests in a worker. An `all` worker's
# trains wait for its learner, and a crowd's labels can only be learned together (Config.max_group) if as many wait at
# once; Config.free_threads of them never wait, so predictions do not queue behind a stalled learner.
threads = settings.threads
graceful_timeout = settings.shutdown_seconds
if settings.role == "all":
    workers = 1


def post_worker_init(worker) -> None:
    """Begin stopping at SIGTERM itself rather than after the requests in flight; gunicorn's own handler still
    runs (it stops accepting and lets those requests finish)."""
    from main import begin_shut_down

    app = worker.wsgi
    stop_accepting = signal.getsignal(signal.SIGTERM)

    def stopping(signum, frame) -> None:
        if hasattr(app, "extensions"):
            begin_shut_down(app)
        stop_accepting(signum, frame)

    signal.signal(signal.SIGTERM, stopping)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn had it: requests' system calls are not interrupted


def worker_exit(server, worker) -> None:
    """The worker is stopping (SIGTERM, or a restart): hand over what it learned."""
    from main import shut_down

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        shut_down(app)
