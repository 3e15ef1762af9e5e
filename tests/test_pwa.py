"""The installable app, server side: manifest, service worker, offline page, which pages a
device may keep, logging out, and the share target ("send to...")."""

import io
import json
import os
import re
import shutil
import time

import pytest
import sqlalchemy as sa
from PIL import Image

from chipper.models import Attachment, Message
from tests.conftest import HTMX, JSON, AuthActions, as_json, text


@pytest.fixture
def app_config():
    # The scheduler sweeps held shares and cut-off uploads every 50 ms instead of every minute.
    return {"UPLOAD_SWEEP_INTERVAL": 0.05}


def photo(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "#2a7").save(out, format="JPEG")
    return out.getvalue()


def fetch(client, path: str):
    """GET, read and closed (static files are open until then)."""
    response = client.get(path)
    response.get_data()
    response.close()
    return response


def worker_settings(client) -> dict:
    source = text(client.get("/sw.js"))
    match = re.match(r"self\.CHIPPER = (\{.*?\});\n", source)
    assert match, source[:200]
    return json.loads(match.group(1))


# Manifest and service worker


def test_manifest_names_the_app_its_icons_and_the_share_target(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = as_json(response)
    assert manifest["name"] == "Chipper"
    assert manifest["start_url"] == "/conversations"
    assert manifest["display"] == "standalone"
    assert manifest["theme_color"] and manifest["background_color"]
    assert manifest["shortcuts"][0]["url"] == "/conversations/new"
    target = manifest["share_target"]
    assert (target["action"], target["method"], target["enctype"]) == (
        "/share",
        "POST",
        "multipart/form-data",
    )
    assert target["params"]["files"][0]["name"] == "file"
    for icon in manifest["icons"] + manifest["shortcuts"][0]["icons"]:
        image = fetch(client, icon["src"])
        assert image.status_code == 200 and image.mimetype == "image/png"
        width, height = Image.open(io.BytesIO(image.data)).size
        assert icon["sizes"] == f"{width}x{height}"
    assert {(i["sizes"], i["purpose"]) for i in manifest["icons"]} == {
        ("192x192", "any"),
        ("512x512", "any"),
        ("512x512", "maskable"),
    }


def test_maskable_icon_fills_its_square_and_keeps_the_picture_in_the_safe_zone(client):
    icon = Image.open(io.BytesIO(fetch(client, "/static/icons/icon-maskable-512.png").data))
    icon = icon.convert("RGBA")
    size = icon.width
    # Opaque to the corners (launchers crop it to their own shape)...
    for corner in [(0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)]:
        assert icon.getpixel(corner)[3] == 255
    # ...and the white bubble lies inside the central circle of radius 40 % they all keep.
    white = [
        (x, y)
        for x in range(0, size, 4)
        for y in range(0, size, 4)
        if icon.getpixel((x, y))[:3] == (255, 255, 255)
    ]
    assert white
    centre = size / 2
    assert max(((x - centre) ** 2 + (y - centre) ** 2) ** 0.5 for x, y in white) < 0.4 * size


def test_every_page_links_the_manifest_and_loads_the_page_script(client, make, auth):
    for path in ["/login", "/conversations"]:
        if path == "/conversations":
            auth.login(make.user("Ada"))
        html = text(client.get(path))
        assert '<link rel="manifest" href="/manifest.webmanifest">' in html
        assert 'src="/static/js/pwa.js"' in html
        assert 'data-service-worker="/sw.js"' in html


def test_service_worker_is_served_from_the_root_and_never_cached(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    # Served from a file, with no inline script to allow: the pages' CSP holds.
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_service_worker_precaches_the_shell_and_leaves_private_paths_alone(client, ada, make):
    settings = worker_settings(client)
    assert re.fullmatch(r"[0-9a-f]{12}", settings["version"])
    precache = settings["precache"]
    assert "/offline" in precache
    assert {f"/static/css/{name}.css" for name in ("base", "conversation", "call")} <= set(precache)
    for path in precache:
        assert fetch(client, path).status_code == 200, path
    # Every script, stylesheet and icon sprite a page loads is in the shell, or a saved page
    # would open offline without them.
    chat = make.private(ada, make.user("Bob"))
    for page in ("/conversations", f"/conversations/{chat}"):
        html = text(client.get(page))
        for asset in re.findall(r'(?:src|href)="(/static/[^"#]+\.(?:js|css|svg))', html):
            assert asset in precache, asset
    assert not any(p.startswith(("/conversations", "/attachments", "/stream")) for p in precache)
    assert settings["never"] == ["/stream", "/attachments/", "/sw.js"]


def test_the_call_modules_and_everything_they_import_are_precached(client, ada):
    # js/calls/main.js is a module: the browser fetches what it imports, which no page names,
    # so offline it works only if each import is in the shell too.
    precache = worker_settings(client)["precache"]
    html = text(client.get("/conversations"))
    entry = "/static/js/calls/main.js"
    assert f'<script src="{entry}" type="module">' in html
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        seen.add(path)
        assert path in precache, path
        source = text(fetch(client, path))
        for name in re.findall(r'^import .* from "\./([a-z]+\.js)";$', source, re.M):
            if f"/static/js/calls/{name}" not in seen:
                todo.append(f"/static/js/calls/{name}")
    assert len(seen) >= 5  # main, common, ringing, room, media, mesh: one job each


def test_the_worker_version_follows_the_shell_files(app, client, tmp_path):
    first = worker_settings(client)["version"]
    copy = tmp_path / "static"
    shutil.copytree(app.static_folder, copy)
    (copy / "css" / "call.css").write_text("body { color: red; }\n")
    app.static_folder = str(copy)
    app.extensions.pop("chipper.shell_version")
    assert worker_settings(client)["version"] != first


def test_offline_page_shows_nothing_of_the_signed_in_person(client, make, auth):
    ada = make.user("Ada Secretname")
    auth.login(ada)
    response = client.get("/offline")
    assert response.status_code == 200
    html = text(response)
    assert "You are offline" in html
    assert "Secretname" not in html and "@example.com" not in html
    assert "csrf" not in html.lower()


@pytest.mark.parametrize(
    ("path", "headers", "saved"),
    [
        ("/conversations", {}, True),
        ("/conversations/{chat}", {}, True),
        ("/conversations/{chat}", HTMX, False),
        ("/conversations/{chat}", JSON, False),
        ("/conversations/{chat}?before=999", {}, False),
        ("/conversations/new", {}, False),
        ("/share", {}, False),
    ],
)
def test_only_the_list_and_latest_messages_may_be_kept_offline(
    client, ada, bob, make, path, headers, saved
):
    chat = make.private(ada, bob)
    response = client.get(path.format(chat=chat), headers=headers)
    assert response.status_code == 200
    assert (response.headers.get("X-Offline-Copy") == "save") is saved


@pytest.mark.parametrize("headers", [{}, JSON], ids=["page", "json"])
def test_logging_out_clears_this_devices_copies(client, ada, headers):
    response = client.post("/logout", headers=headers)
    assert response.status_code in (204, 303)
    assert response.headers["Clear-Site-Data"] == '"cache", "storage"'


# Share target: the phone's share sheet posts, the person picks a conversation


def held_files(app) -> list[str]:
    folder = os.path.join(app.config["UPLOAD_FOLDER"], "held")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def stored_files(app) -> list[str]:
    folder = app.config["UPLOAD_FOLDER"]
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))


def share(client, **fields):
    """What a phone's share sheet sends: multipart, and no CSRF token."""
    data = {k: v for k, v in fields.items() if k != "file"}
    if "file" in fields:
        data["file"] = fields["file"]
    return client.post("/share", data=data, content_type="multipart/form-data", csrf=False)


def test_a_shared_photo_is_held_then_sent_where_the_person_chooses(app, client, ada, bob, make):
    chat = make.private(ada, bob)
    response = share(client, title="Holiday", file=(io.BytesIO(photo()), "beach.jpg"))
    assert response.status_code == 303 and response.headers["Location"] == "/share"
    assert len(held_files(app)) == 2  # the photo and its thumbnail, set aside
    assert stored_files(app) == []

    page = text(client.get("/share"))
    assert "Send to…" in page and "beach.jpg" in page and "Holiday" in page
    assert f'name="conversation_id" value="{chat}"' in page and "Bob" in page

    response = client.submit(
        "/share", "/share/send", {"conversation_id": str(chat), "body": "Holiday at last"}
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"/conversations/{chat}#m")
    message = as_json(client.get(f"/conversations/{chat}", headers=JSON))["messages"][-1]
    assert (message["type"], message["body"]) == ("image", "Holiday at last")
    assert message["attachment"]["name"] == "beach.jpg"
    assert fetch(client, message["attachment"]["url"]).status_code == 200
    assert held_files(app) == [] and len(stored_files(app)) == 2
    # Sent: the "send to" page is empty again.
    assert "beach.jpg" not in text(client.get("/share"))


def test_shared_text_and_link_become_one_message_without_repeats(client, ada, bob, make):
    chat = make.private(ada, bob)
    share(
        client,
        title="A good read",
        text="Look at this https://example.org/post",
        url="https://example.org/post",
    )
    shared = as_json(client.get("/share", headers=JSON))
    assert shared == {
        "body": "A good read\nLook at this https://example.org/post",
        "file": None,
    }
    response = client.post(
        "/share/send", data={"conversation_id": chat, "body": shared["body"]}, headers=JSON
    )
    assert response.status_code == 201
    assert as_json(response)["body"] == "A good read\nLook at this https://example.org/post"


def test_share_sheet_json_answers(client, ada):
    response = client.post(
        "/share",
        data={"text": "hi", "file": (io.BytesIO(photo()), "p.jpg")},
        content_type="multipart/form-data",
        headers=JSON,
        csrf=False,
    )
    assert response.status_code == 201
    assert as_json(response)["file"]["kind"] == "image"
    assert as_json(response)["file"]["name"] == "p.jpg"


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"file": (io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "x.svg")}, 415, "PDF"),
        ({"file": (io.BytesIO(b"#!/bin/sh\nrm -rf /\n"), "x.png")}, 415, "PDF"),
        ({"title": " ", "text": ""}, 422, "Nothing was shared"),
    ],
    ids=["svg", "script", "nothing"],
)
def test_refused_shares_say_why_and_keep_nothing(app, client, ada, fields, status, message):
    response = share(client, **fields)
    assert response.status_code == status
    assert message in text(response)
    assert held_files(app) == [] and stored_files(app) == []


def test_a_new_share_replaces_the_one_not_sent(app, client, ada):
    share(client, file=(io.BytesIO(photo()), "first.jpg"))
    first = held_files(app)
    share(client, file=(io.BytesIO(photo((30, 30))), "second.jpg"))
    assert "second.jpg" in text(client.get("/share"))
    assert len(held_files(app)) == 2 and set(held_files(app)).isdisjoint(first)


def test_dont_send_drops_the_held_file(app, client, ada):
    share(client, file=(io.BytesIO(photo()), "p.jpg"))
    response = client.submit("/share", "/share/cancel", {})
    assert response.status_code == 303 and response.headers["Location"] == "/conversations"
    assert held_files(app) == []
    assert "p.jpg" not in text(client.get("/share"))


def test_shares_never_sent_are_removed_after_a_day(app, client, ada, make):
    share(client, file=(io.BytesIO(photo()), "old.jpg"))
    folder = os.path.join(app.config["UPLOAD_FOLDER"], "held")
    old = held_files(app)
    day_ago = time.time() - 25 * 3600
    for name in old:
        os.utime(os.path.join(folder, name), (day_ago, day_ago))
    other = app.test_client()
    AuthActions(other, make).login(make.user("Cy"))
    share(other, file=(io.BytesIO(photo()), "recent.jpg"))
    recent = sorted(set(held_files(app)) - set(old))
    assert old and recent
    # The scheduler's sweep (every UPLOAD_SWEEP_INTERVAL, 50 ms here) removes the old share.
    deadline = time.monotonic() + 5
    while set(old) & set(held_files(app)):
        assert time.monotonic() < deadline, "the old share was never swept"
        time.sleep(0.02)
    assert held_files(app) == recent


def test_sending_a_share_elsewhere_than_your_conversations_is_404_and_keeps_it(
    app, client, ada, bob, cara, make
):
    theirs = make.private(bob, cara)
    share(client, file=(io.BytesIO(photo()), "p.jpg"))
    response = client.submit("/share", "/share/send", {"conversation_id": str(theirs)})
    assert response.status_code == 404
    assert len(held_files(app)) == 2
    assert "p.jpg" in text(client.get("/share"))


def test_send_needs_a_conversation(client, ada):
    share(client, text="hello")
    response = client.submit("/share", "/share/send", {"body": "hello"})
    assert response.status_code == 422
    assert "Choose a conversation" in text(response)
    assert "hello" in text(response)


def test_the_send_to_page_takes_a_file_without_a_share(app, client, ada, bob, make, sql):
    """Opened directly (or with JavaScript off), the page is a plain upload form."""
    chat = make.private(ada, bob)
    page = text(client.get("/share"))
    assert 'type="file" name="file"' in page and 'enctype="multipart/form-data"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        "/share/send",
        data={
            "csrf_token": token,
            "conversation_id": str(chat),
            "body": "",
            "file": (io.BytesIO(photo()), "direct.jpg"),
        },
        content_type="multipart/form-data",
        csrf=False,
    )
    assert response.status_code == 303
    assert sql.scalars(sa.select(Attachment.original_name)) == ["direct.jpg"]
    assert sql.scalars(sa.select(Message.type)) == ["image"]


def test_send_is_protected_from_other_sites(client, ada, bob, make):
    chat = make.private(ada, bob)
    share(client, text="hello")
    response = client.post("/share/send", data={"conversation_id": chat}, csrf=False)
    assert response.status_code == 400


def test_signed_out_share_asks_to_log_in_and_keeps_nothing(app, client):
    response = share(client, file=(io.BytesIO(photo()), "p.jpg"))
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login")
    assert held_files(app) == [] and stored_files(app) == []
