#!/usr/bin/env python
"""Screenshots of Chipper's pages at phone and desktop sizes, light and dark, into a folder
(docs/screenshots/ by default, which the README shows):

    .venv/bin/python scripts/screenshots.py [folder]

It serves the app from a fresh temporary database filled by `seed-demo` and a few more
messages, then opens each page in Debian's Chromium (/usr/bin/chromium) with Playwright, as
Ada. Nothing here is compared pixel by pixel: the pictures are for people to look at.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"phone": (375, 812), "desktop": (1280, 800)}
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
MORE = """
from chipper import create_app
from chipper.extensions import db
from chipper.models import Conversation, User
from chipper.services import messages, reactions
from chipper.services.conversations import Membership
import sqlalchemy as sa

app = create_app()
with app.app_context():
    people = {u.name.split()[0]: u for u in db.session.scalars(sa.select(User))}
    club = db.session.scalar(sa.select(Conversation).where(Conversation.name == "Analytical club"))
    sent = {}
    for name, body in [
        ("Grace", "I did. And a moth, taped into the log book."),
        ("Grace", "Meeting on **Thursday** at six? @Ada can you book the room?"),
        ("Ada", "Thursday works for me. Notes: https://example.com/agenda"),
        ("Alan", "> I will bring the tea\\n\\nTwo pots: `earl grey` and _assam_."),
        ("Ada", "Then I bring the biscuits."),
    ]:
        sent[body.split()[0]] = messages.send_message(people[name], Membership.of(club), body).id
    for name, start, emoji in [
        ("Ada", "Meeting", "👍"), ("Alan", "Meeting", "👍"), ("Grace", "Then", "🍪"),
        ("Alan", "Then", "😂"), ("Grace", ">", "❤️"),
    ]:
        reactions.toggle_reaction(people[name], sent[start], emoji)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict, port: int) -> subprocess.Popen:
    flask = [sys.executable, "-m", "flask", "--app", "chipper"]
    for verb in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run(flask + verb, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", MORE], env=env, check=True)
    server = subprocess.Popen(
        flask + ["run", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the app did not start")


def choose(message, action: str) -> None:
    """Opens a message's menu ("...", shown on hover) and picks an action in it."""
    message.hover()
    message.get_by_title("Message actions").click()
    message.get_by_role("link", name=action).click()


def journey(page, path_for) -> list[Path]:
    """Ada's way through the pages, a picture of each."""
    shots = []

    def snap(name: str) -> None:
        page.wait_for_timeout(300)
        page.screenshot(path=path_for(name))
        shots.append(path_for(name))

    page.goto("/login")
    snap("login")
    page.goto("/register")
    snap("register")
    page.goto("/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("chipper-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/conversations")
    snap("list")
    page.goto("/conversations/new")
    snap("new")
    page.goto("/conversations")
    page.get_by_role("link", name="Grace Hopper").first.click()
    page.wait_for_selector("#composer")
    snap("private")
    page.goto("/conversations")
    page.get_by_role("link", name="Analytical club").first.click()
    page.wait_for_selector("#composer")
    snap("group")
    # Ada edits her message in place and answers Alan's; the first pass saves both, the
    # later ones (the same database) open the same forms and cancel them.
    first_pass = page.locator("#messages .quote").count() == 0
    biscuits = page.locator("#messages .message.mine").filter(has_text="biscuits").last
    choose(biscuits, "Edit this message")
    page.wait_for_selector(".message.editing textarea")
    snap("edit")
    editing = page.locator(".message.editing")
    if first_pass:
        editing.locator("textarea").fill("Then I bring the biscuits and the jam.")
        editing.get_by_role("button", name="Save").click()
    else:
        editing.get_by_role("link", name="Cancel").click()
    page.wait_for_selector(".message .edited")
    theirs = page.locator("#messages .message").filter(has_text="Two pots").last
    choose(theirs, "Reply to this message")
    page.wait_for_selector("#replying")
    snap("replying")
    if first_pass:
        page.get_by_label("Message", exact=True).fill("Earl Grey, please.")
        page.locator("#composer").get_by_role("button", name="Send").click()
    else:
        page.get_by_title("Cancel the reply").click()
    page.wait_for_selector("#messages .quote")
    # A message's menu open: its quick reactions, any emoji, Reply; then "@" in the composer.
    theirs.hover()
    theirs.get_by_title("Message actions").click()
    snap("menu")
    page.keyboard.press("Escape")
    theirs.get_by_title("Message actions").click()
    box = page.get_by_label("Message", exact=True)
    box.fill("")
    box.type("Thanks @Gr")
    page.wait_for_selector("#mention-list")
    snap("mention")
    box.fill("")
    page.get_by_role("link", name="Group details").click()
    page.wait_for_selector("#details:visible")
    snap("details")
    page.goto("/search?q=tea")
    page.wait_for_selector(".search-hits")
    snap("search")
    return shots


def call(page, path_for) -> list[Path]:
    """Ada's video call in the club, ringing: a pass of its own, after the others, so no
    page above shows the "cancelled call" entries these calls leave."""
    page.goto("/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("chipper-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/conversations")
    page.get_by_role("link", name="Analytical club").first.click()
    page.get_by_role("button", name="Video call").click()
    page.wait_for_selector(".call-controls")
    page.wait_for_timeout(1500)
    page.screenshot(path=path_for("call"))
    page.locator(".call-controls").get_by_role("button", name="Hang up").click()
    page.wait_for_timeout(300)
    return [path_for("call")]


def without_javascript(page, path_for) -> list[Path]:
    """The same account without JavaScript: the conversation, who reacted, the account page."""
    shots = []

    def snap(name: str) -> None:
        page.screenshot(path=path_for(name))
        shots.append(path_for(name))

    page.goto("/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("chipper-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    page.goto("/conversations")
    page.get_by_role("link", name="Analytical club").first.click()
    page.wait_for_selector("#composer")
    snap("group-nojs")
    page.get_by_role("link", name="Who reacted").first.click()
    page.wait_for_selector("h1")
    snap("reactions-nojs")
    page.goto("/account")
    snap("account-nojs")
    page.goto("/search?q=biscuits")
    snap("search-nojs")
    return shots


def shoot(base: str, out: Path) -> list[Path]:
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for walk in (journey, call, without_javascript):
            for scheme in ("light", "dark"):
                for size, (width, height) in SIZES.items():
                    context = browser.new_context(
                        viewport={"width": width, "height": height},
                        color_scheme=scheme,
                        base_url=base,
                        java_script_enabled=walk is not without_javascript,
                    )
                    suffix = f"-{size}-{scheme}.png"
                    shots += walk(context.new_page(), lambda name, s=suffix: out / (name + s))
                    context.close()
        browser.close()
    return shots


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/chipper.sqlite3",
            "UPLOAD_FOLDER": f"{tmp}/uploads",
            "SECRET_KEY": "screenshots",
            "REDIS_URL": "",
            "PASSWORD_HASH_TIME": "1",
            # Twelve sign-ins in a minute from one address: more than the login limit allows.
            "RATELIMIT_ENABLED": "0",
        }
        port = free_port()
        server = serve(env, port)
        try:
            shots = shoot(f"http://127.0.0.1:{port}", out)
        finally:
            server.terminate()
            server.wait()
    print(f"{len(shots)} screenshots in {out}")


if __name__ == "__main__":
    main()
