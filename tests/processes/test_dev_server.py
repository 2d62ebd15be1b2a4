"""`python main.py` serves the app for development, on PORT."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from conftest import ROOT
from server import free_port


def test_python_main_serves_on_port(tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "STORAGE_URL": str(tmp_path / "store")}
    process = subprocess.Popen(
        [sys.executable, "main.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"python main.py exited with {process.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert page.status == 200 and b"Draw a digit" in page.read()
                    break
            except OSError:
                assert time.monotonic() < deadline, "python main.py did not serve within 120 s"
                time.sleep(0.25)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as health:
            assert health.status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
