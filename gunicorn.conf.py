"""gunicorn's settings that depend on the role, and the platform's lifecycle (the Procfile's `web:` command names
this file).

Workers: gunicorn takes WEB_CONCURRENCY (Heroku sets it from the dyno's memory) unless told otherwise.
A `serve` worker is light (numpy, no TensorFlow: ~140 MB), so it takes as many as that says. An `all`
worker holds TensorFlow and a learner (~820 MB), and two learners in one dyno would only repeat each
other's work: one worker, whatever WEB_CONCURRENCY says. Threads per worker: Config.threads.

Stopping: Heroku sends SIGTERM and kills the dyno 30 s later. gunicorn lets requests in flight finish for
`graceful_timeout`, then each worker's exit hands an `all` learner's lease over with a checkpoint at its version.
Binding: the master binds $PORT before any worker imports the app, so Heroku's 60 s boot limit is met in about
a second, whatever loading the models costs.
"""

from livedigits.config import Config

settings = Config.from_env()
# numpy, Pillow and TensorFlow release the GIL: threads serve concurrent requests in a worker. An `all` worker's
# trains wait for its learner, and a crowd's labels can only be learned together (Config.max_group) if as many wait at
# once; Config.free_threads of them never wait, so predictions do not queue behind a stalled learner.
threads = settings.threads
graceful_timeout = 20  # under Heroku's 30 s, leaving the hand-over its time
if settings.role == "all":
    workers = 1


def worker_exit(server, worker) -> None:
    """The worker is stopping (SIGTERM, or a restart): hand over what it learned."""
    from main import shut_down

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        shut_down(app)
