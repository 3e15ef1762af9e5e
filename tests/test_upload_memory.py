"""Uploads cannot exhaust memory: eight 49-megapixel PNGs sent at once to one gunicorn worker
all get an answer, and the worker grows by less than 400 MB. It grew by 3.7 GB before photos
took turns to decode and were shrunk to IMAGE_MAX_SIDE (2560 px), and by 570-700 MB while two
decoded at a time whatever their size; now each takes its share of IMAGE_DECODE_MEMORY_MB
(400), and a 49-megapixel photo needs about 300 MB, so they decode one by one."""

import io
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import PASSWORD
from tests.realtime_support import Visitor

pytestmark = pytest.mark.xdist_group("memory")  # alone on its worker: it measures a process

MB = 1024 * 1024


def big_png(side: int = 7000) -> bytes:
    """49 megapixels that compress to a few hundred KB (under the upload limit)."""
    picture = Image.new("RGB", (side, side), "#2a6")
    picture.paste("#c33", (0, 0, side // 2, side // 2))
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=False, compress_level=9)
    return out.getvalue()


def worker_pid(master: int) -> int:
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True
    ).stdout.split()
    assert children, "gunicorn has no worker"
    return int(children[0])


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.long
def test_eight_huge_photos_at_once_keep_the_worker_small(start_server, make):
    server = start_server(redis=False, MAX_UPLOAD_MB="10")
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    photo = big_png()
    assert len(photo) < 10 * MB
    visitor = Visitor(server.base_url, make.email(ada), PASSWORD)
    pid = worker_pid(server.process.pid)
    visitor.send(chat, "warming up")
    idle = rss(pid)
    peak = [idle]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss(pid))
            time.sleep(0.01)

    def upload(n: int) -> httpx.Response:
        files = {"file": (f"huge-{n}.png", photo, "image/png")}
        return visitor.request("POST", f"/conversations/{chat}/messages", files=files, timeout=120)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(upload, range(8)))
    finally:
        done.set()
        watcher.join()
        visitor.close()
    assert [a.status_code for a in answers] == [201] * 8, [a.text[:200] for a in answers]
    kept = answers[0].json()["attachment"]
    assert max(kept["width"], kept["height"]) == 2560
    grown = (peak[0] - idle) / MB
    print(f"worker grew by {grown:.0f} MB decoding eight 49-megapixel photos at once")
    assert grown < 400, f"the worker grew by {grown:.0f} MB"
