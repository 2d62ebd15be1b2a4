"""The project's gunicorn.conf.py, and the stage timers of bench/profiling/stages.py in each worker: the Procfile's
`web:` command with `--config bench/profiling/gunicorn_profiled.py` after it (the last --config wins)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "profiling")]
exec((ROOT / "gunicorn.conf.py").read_text())  # the project's own settings, as gunicorn reads them
project_post_worker_init = post_worker_init  # noqa: F821 (defined by the line above)


def post_worker_init(worker) -> None:
    import stages

    stages.install(worker.wsgi)
    project_post_worker_init(worker)
