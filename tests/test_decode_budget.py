"""Photos share a process's decode memory: a huge one waits for room, small ones decode side
by side, and turns are first come, first served (a scan is not overtaken for ever)."""

import io
import threading
import time

from PIL import Image

from chipper.media import images
from chipper.media.budget import Budget

MB = 1024 * 1024


def entered(budget: Budget, amount: int, log: list, name: str, hold: threading.Event):
    def run():
        with budget.taken(amount):
            log.append(name)
            hold.wait(5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def settle():
    time.sleep(0.05)


def test_small_photos_decode_together_and_a_big_one_waits_for_room():
    budget = Budget(400 * MB)
    log: list[str] = []
    hold = threading.Event()
    first = entered(budget, 70 * MB, log, "phone photo 1", hold)
    second = entered(budget, 70 * MB, log, "phone photo 2", hold)
    settle()
    assert log == ["phone photo 1", "phone photo 2"]
    scan = entered(budget, 300 * MB, log, "scan", hold)
    settle()
    assert log == ["phone photo 1", "phone photo 2"], "the scan did not wait for room"
    hold.set()
    for thread in (first, second, scan):
        thread.join(5)
    assert log[-1] == "scan"
    assert budget.used == 0


def test_a_photo_larger_than_the_budget_still_decodes_alone():
    budget = Budget(100 * MB)
    with budget.taken(300 * MB):
        assert budget.used == 100 * MB
    assert budget.used == 0


def test_a_waiting_scan_is_not_overtaken_by_later_small_photos():
    budget = Budget(400 * MB)
    log: list[str] = []
    holds = [threading.Event() for _ in range(3)]
    threads = [entered(budget, 200 * MB, log, "photo", holds[0])]
    settle()
    threads.append(entered(budget, 300 * MB, log, "scan", holds[1]))
    settle()
    threads.append(entered(budget, 10 * MB, log, "later small photo", holds[2]))
    settle()
    # The small one would fit beside the first photo, but the scan asked before it.
    assert log == ["photo"]
    holds[0].set()
    settle()
    assert log == ["photo", "scan", "later small photo"]
    for hold in holds:
        hold.set()
    for thread in threads:
        thread.join(5)
    assert budget.used == 0


def test_a_failed_decode_gives_its_memory_back():
    budget = Budget(100 * MB)
    try:
        with budget.taken(60 * MB):
            raise ValueError("broken photo")
    except ValueError:
        pass
    assert budget.used == 0


def saved(size: tuple[int, int], fmt: str, tmp_path, **options) -> str:
    path = tmp_path / f"photo.{fmt.lower()}"
    out = io.BytesIO()
    Image.new("RGB", size, "#2a6").save(out, format=fmt, **options)
    path.write_bytes(out.getvalue())
    return str(path)


def test_the_estimate_reads_the_header_only(tmp_path):
    big = saved((4000, 3000), "JPEG", tmp_path)
    assert images.footprint(big, max_side=2560) == 4 * 4000 * 3000 * 3 // 2
    small = saved((800, 600), "PNG", tmp_path)
    assert images.footprint(small, max_side=2560) == 4 * 800 * 600
    frames = [Image.new("RGB", (100, 100), colour) for colour in ("red", "green", "blue")]
    gif = tmp_path / "moving.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert images.footprint(str(gif), max_side=2560) == 4 * 100 * 100 * 3
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    assert images.footprint(str(text)) == 0
