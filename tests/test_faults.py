"""Faults a real server meets: a worker killed in the middle of sends, fifty writers at once, an
upload folder the system will not write to, and a disk that fills up. Each is a real condition
(a SIGKILL, real concurrent connections, errors the kernel returns even to root), never a mock.
"""

import io
import os
import random
import resource
import signal
import threading
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from chipper.models import Attachment, EventRecipient, Message, User
from tests.conftest import HTMX, JSON, refused_page, text
from tests.realtime_support import (
    Visitor,
    wait_for,
    wait_for_workers,
    wait_until_ended,
    worker_pids,
    worker_serving,
)

# The two tests that load the host most run one after the other on one pytest-xdist worker.
heavy = pytest.mark.xdist_group("faults")


def created(conversation_id: int, message_id: int | None = None):
    """The frame that appends a message to the conversation's page."""

    def match(event) -> bool:
        return event.name == f"message-created-{conversation_id}" and (
            message_id is None or f'id="m{message_id}"' in event.data
        )

    return match


def appended(stream, conversation_id: int) -> list[int]:
    """The messages the stream appended to the page, in order, duplicates kept."""
    return [
        int(e.data.split('id="m', 1)[1].split('"', 1)[0])
        for e in stream.events
        if created(conversation_id)(e)
    ]


def settled(stream, conversation_id: int, message_id: int) -> None:
    """Waits for the last frame (unread-changed) of the event that created this message:
    whatever the user's events before it are has reached the stream by then."""
    event = wait_for(stream, created(conversation_id, message_id), timeout=15)
    wait_for(stream, lambda e: e.name == "unread-changed" and e.id == event.id, timeout=15)


def history(visitor: Visitor, conversation_id: int) -> list[int]:
    """Every message id of the conversation as its member reads it, page by page."""
    ids, before = [], None
    while True:
        params = {"before": before} if before else {}
        page = visitor.request("GET", f"/conversations/{conversation_id}/messages", params=params)
        assert page.status_code == 200, page.text
        ids = [m["id"] for m in page.json()["messages"]] + ids
        if not page.json()["has_more"]:
            return ids
        before = ids[0]


def stored(sql, conversation_id: int) -> list[int]:
    return sql.scalars(
        sa.select(Message.id).where(Message.conversation_id == conversation_id).order_by(Message.id)
    )


# A worker killed with SIGKILL while messages are being sent


SENDERS, SENDS_EACH, KILL_AFTER = 3, 15, 12


@heavy
def test_a_worker_killed_mid_sends_loses_no_acknowledged_message(make, sql, visit, start_server):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    server = start_server(WEB_CONCURRENCY="2")
    wait_for_workers(server, 2)
    senders = [visit(ada, server) for _ in range(SENDERS)]
    receiver = visit(bob, server)
    # As a page does: its stream starts from the position the page was rendered at.
    opened_at = {"last_event_id": sql.scalar(sa.select(User.event_seq).where(User.id == bob))}
    page = receiver.stream(params=opened_at)
    victim = worker_serving(server, page)

    killed = threading.Event()
    answers = []  # (sent after the kill, status or the connection error's name, message id)
    acknowledged = threading.Semaphore(0)

    def keep_sending(sender: Visitor, number: int) -> None:
        for n in range(SENDS_EACH):
            after = killed.is_set()
            try:
                # A new connection for every send, so the sends spread over both workers.
                response = sender.request(
                    "POST",
                    f"/conversations/{chat}/messages",
                    json={"body": f"sender {number}, message {n}"},
                    headers={"Connection": "close"},
                )
            except httpx.TransportError as error:  # the killed worker's own request
                answers.append((after, type(error).__name__, None))
                continue
            ok = response.is_success
            answers.append((after, response.status_code, response.json()["id"] if ok else None))
            if ok:
                acknowledged.release()

    threads = [
        threading.Thread(target=keep_sending, args=(sender, number))
        for number, sender in enumerate(senders)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in range(KILL_AFTER):
            assert acknowledged.acquire(timeout=15), answers
        os.kill(victim, signal.SIGKILL)
        killed.set()

        # As EventSource does: the connection dropped, so it opens the same URL again, with
        # the last id it saw (if it saw one yet) in Last-Event-ID.
        wait_until_ended(page)
        seen_ids = [e.id for e in page.events if e.id is not None]
        resume = {"Last-Event-ID": seen_ids[-1]} if seen_ids else {}
        again = receiver.stream(params=opened_at, headers=resume)
    finally:
        for thread in threads:
            thread.join(60)
    final = senders[0].send(chat, "after the storm")["id"]
    settled(again, chat, final)

    statuses = [status for _, status, _ in answers]
    assert len(answers) == SENDERS * SENDS_EACH
    assert all(status == 201 or isinstance(status, str) for status in statuses), statuses
    assert any(after and status == 201 for after, status, _ in answers), answers
    acked = [message_id for _, status, message_id in answers if status == 201] + [final]
    in_database = stored(sql, chat)
    assert set(acked) <= set(in_database)
    assert history(receiver, chat) == in_database
    seen = appended(page, chat) + appended(again, chat)
    # Every committed message reached the page exactly once, acknowledged or not.
    assert sorted(seen) == in_database, (seen, in_database)
    wait_for_workers(server, 2, without=(victim,))  # the master replaced the killed worker


# Fifty writers at once


WRITERS, SENDS_PER_WRITER = 50, 4


@heavy
def test_fifty_concurrent_writers_lose_nothing(make, sql, visit, start_server):
    hub = make.user("Hub")
    writers = [make.user(f"Writer {n}") for n in range(WRITERS)]
    chats = [make.private(writer, hub) for writer in writers]
    server = start_server(WEB_CONCURRENCY="2")
    page = visit(hub, server).stream()
    hub_events = sa.select(EventRecipient.seq).where(EventRecipient.user_id == hub)
    numbered_before = len(sql.scalars(hub_events))  # the fifty conversations' arrivals

    start = threading.Barrier(WRITERS)
    answers, failures = [], []

    def write(writer: int, chat: int) -> None:
        try:
            visitor = visit(writer, server)  # fifty sign-ins at once too
            start.wait(30)
            for n in range(SENDS_PER_WRITER):
                response = visitor.request(
                    "POST", f"/conversations/{chat}/messages", json={"body": f"note {n}"}
                )
                answers.append((response.status_code, response.text))
        except Exception as error:  # reported below, not raised in the thread
            failures.append(error)

    threads = [
        threading.Thread(target=write, args=pair) for pair in zip(writers, chats, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)

    assert not failures, failures
    assert [status for status, _ in answers] == [201] * WRITERS * SENDS_PER_WRITER, answers
    acked = sorted(int(body.split('"id":', 1)[1].split(",", 1)[0]) for _, body in answers)
    in_database = sql.scalars(
        sa.select(Message.id).where(Message.conversation_id.in_(chats)).order_by(Message.id)
    )
    assert acked == in_database
    # The hub's events are numbered 1, 2, 3... without a gap or a double, and its open page
    # got every message once.
    seqs = sql.scalars(hub_events.order_by(EventRecipient.seq))
    assert seqs == list(range(1, numbered_before + len(acked) + 1))
    last = visit(writers[0], server).send(chats[0], "last")["id"]
    settled(page, chats[0], last)
    seen = [m for chat in chats for m in appended(page, chat)]
    assert sorted(seen) == [*acked, last]
    log = server.log_path.read_text(errors="replace")
    assert "database is locked" not in log
    assert "Traceback" not in log


# Files the system will not write


def noise_jpeg(side: int, quality: int) -> bytes:
    """A photo of random pixels: small at a low quality, large once saved again at ours."""
    rng = random.Random(side)
    picture = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def counts(sql) -> tuple[int, int]:
    return (
        sql.scalar(sa.select(sa.func.count(Message.id))),
        sql.scalar(sa.select(sa.func.count(Attachment.id))),
    )


UNWRITABLE = "The server cannot store files right now"


@pytest.mark.parametrize("how", ["json", "htmx", "no-js"])
def test_an_upload_folder_the_system_refuses_is_a_clear_error(
    app, client, make, ada, bob, sql, how
):
    """The upload folder's place is taken by a regular file (a volume that failed to mount
    leaves such things): creating anything in it fails for root too."""
    chat = make.private(ada, bob)
    blocker = Path(app.config["UPLOAD_FOLDER"])
    blocker.write_bytes(b"not a folder")
    upload = {"body": "look", "file": (io.BytesIO(noise_jpeg(64, 90)), "photo.jpg")}
    url = f"/conversations/{chat}/messages"

    if how == "json":
        response = client.post(url, data=upload, headers=JSON)
        assert response.status_code == 503
        assert UNWRITABLE in response.get_json()["error"]
    elif how == "htmx":
        response = client.post(url, data=upload, headers=HTMX)
        assert response.status_code == 422  # the refusal the page swaps into the composer
        assert UNWRITABLE in text(response) and ">look</textarea>" in text(response)
    else:
        response = client.submit(f"/conversations/{chat}", url, upload)
        html = refused_page(client, response, chat)
        assert UNWRITABLE in html and ">look</textarea>" in html

    assert counts(sql) == (0, 0)
    assert blocker.read_bytes() == b"not a folder"
    # Text still goes through: only files need the folder.
    assert client.post(url, data={"body": "words only"}, headers=JSON).status_code == 201


# A full disk: the server's processes may write no file past FULL_AT bytes (RLIMIT_FSIZE, so
# writes fail with EFBIG as they fail with ENOSPC on a full disk; Python ignores SIGXFSZ).
FULL_AT = 256 * 1024
NO_ROOM = "There is no room left on the server for this file"


def fill_disk(server, sql) -> None:
    if sa.make_url(server.env["DATABASE_URL"]).get_backend_name() == "sqlite":
        # SQLite's write-ahead log emptied first: the few pages the server still writes then
        # stay far below the limit, so only the upload meets it.
        busy = sql.scalar(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        assert busy == 0
    for pid in [server.process.pid, *worker_pids(server)]:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (FULL_AT, hard))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # Bigger than the limit as sent: refused while it is being received.
        ("recording.wav", b"RIFF" + bytes(400 * 1024)),
        # Small as sent, bigger than the limit once saved again at our quality.
        ("photo.jpg", noise_jpeg(1600, 5)),
        # Bigger than what the form parser keeps in memory: it spools to a temporary file.
        ("long.wav", b"RIFF" + bytes(900 * 1024)),
    ],
    ids=["while receiving", "while saving a photo again", "while the form is parsed"],
)
def test_a_full_disk_refuses_the_upload_clearly_and_keeps_nothing(
    make, sql, visit, start_server, tmp_path, name, data
):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    server = start_server()
    sender = visit(ada, server)
    folder = Path(server.env["UPLOAD_FOLDER"])
    fill_disk(server, sql)

    response = sender.request(
        "POST", f"/conversations/{chat}/messages", data={"body": ""}, files={"file": (name, data)}
    )
    assert response.status_code == 507, response.text
    assert NO_ROOM in response.json()["error"]
    assert counts(sql) == (0, 0)
    # No temporary file, no half-saved photo (refused while parsing: no folder made at all).
    assert not folder.exists() or list(folder.iterdir()) == []
    assert sender.send(chat, "words still fit")["body"] == "words still fit"
