"""gunicorn's settings that depend on the role (the Procfile's `web:` command names this file).

Workers: gunicorn takes WEB_CONCURRENCY (Heroku sets it from the dyno's memory) unless told otherwise.
A `serve` worker is light (numpy, no TensorFlow: ~100 MB), so it takes as many as that says. An `all`
worker holds TensorFlow and a learner (~820 MB), and two learners in one dyno would only repeat each
other's work: one worker, whatever WEB_CONCURRENCY says.
"""

from config import Config

threads = 4  # numpy, Pillow and TensorFlow release the GIL: threads serve concurrent requests in a worker
if Config.from_env().role == "all":
    workers = 1
