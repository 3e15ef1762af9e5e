"""The README's production command works on a clean install: a new virtual environment,
`pip install -e .` without extras (the test tools would hide a missing dependency), then
`gunicorn -c gunicorn.conf.py wsgi:app`.

The install is made by uv (`uv pip install`), which reads the same declared requirements from
the same index as pip and so misses a dependency exactly when pip would: pip took 12 to 22 s
of CPU here for it, uv 3 to 8 s."""

import os
import subprocess
import sys
import time

import httpx
import pytest
from uv import find_uv_bin

from tests.realtime_support import ROOT, _stop, free_port

# Its own pytest-xdist group: the installation takes a while and runs beside the other tests.
pytestmark = pytest.mark.xdist_group("install")


@pytest.mark.long
def test_a_clean_install_serves_with_the_production_command(tmp_path):
    venv = tmp_path / "venv"
    # No pip inside: uv installs into it from outside (--python).
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    # uv's cache (in the user's cache folder) keeps this quick after the first run.
    installed = subprocess.run(
        [find_uv_bin(), "pip", "install", "--python", str(python), "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    port = free_port()
    env = {
        # Nothing from the developer's shell may point the server at their own services.
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "VIRTUAL_ENV")
        },
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "SECRET_KEY": "install-test-secret",
        "DATABASE_URL": "sqlite:///" + str(tmp_path / "chipper.sqlite3"),
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "PYTHONUNBUFFERED": "1",
    }
    upgraded = subprocess.run(
        [str(bin_dir / "flask"), "--app", "chipper", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr

    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status = None
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    status = http.get("/login").status_code
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        assert status == 200, log_path.read_text(errors="replace")[-5000:]
    finally:
        _stop(server)
