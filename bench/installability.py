#!/usr/bin/env python
"""Installability and offline check of the installable app, in Debian's Chromium. Not a test.

    .venv/bin/python bench/installability.py            # prints a table, rewrites its section
    .venv/bin/python bench/installability.py --runs 20  # more page loads per median

Lighthouse dropped its PWA audits (version 12), so this asks Chromium itself, through the
DevTools protocol, what its install prompt checks: `Page.getAppManifest` (the manifest as
Chromium parsed it, with its errors) and `Page.getInstallabilityErrors` (why the browser
would not offer to install the page; empty means it would). The profile is a real one on disk:
Chromium never offers installs in incognito-like contexts.

What it does:
1. Creates a fresh SQLite database from the migrations in a temporary folder, a user and a
   conversation with 50 messages, and serves the app on a free local port (werkzeug, threads).
2. Opens Chromium (a new persistent profile), logs in through the form, waits until the service
   worker controls the page, and reports the manifest and installability answers, each icon's
   real size and type, and the size of the precached app shell.
3. Loads the conversation page --runs times online, then --runs times with the network cut
   (the service worker serves its saved copy), and reports the median and p90 time to the
   `load` event for both (navigation timing), and whether the offline notice showed each time.

It rewrites its section of bench/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from fanout import machine, write_results  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "installable app"


def serve(folder: Path):
    import logging

    from flask_migrate import upgrade

    from chipper import create_app
    from chipper.cli import init_migrations
    from chipper.extensions import db
    from chipper.models import User
    from chipper.services import conversations, messages
    from chipper.services.accounts import register_user

    app = create_app(
        {
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite3'}",
            "UPLOAD_FOLDER": str(folder / "uploads"),
        }
    )
    init_migrations(app)  # Flask-Migrate is set up by `flask db` only
    with app.app_context():
        upgrade()
        ada = register_user("Ada", "ada@example.com", PASSWORD)
        bob = register_user("Bob", "bob@example.com", PASSWORD)
        chat, _ = conversations.start_private(ada, bob.id)
        bob = db.session.get(User, bob.id)
        for n in range(50):
            messages.send_message(bob, chat, f"Message number {n + 1} of the history")
        chat_id = chat.id
        db.session.remove()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.server_port}", chat_id


def load_time(page) -> float:
    return page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run(runs: int) -> tuple[list[tuple[str, str, str]], dict]:
    rows: list[tuple[str, str, str]] = []
    facts: dict = {}
    with tempfile.TemporaryDirectory(prefix="chipper-install-") as tmp:
        folder = Path(tmp)
        app, server, base, chat = serve(folder)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                folder / "profile", executable_path=CHROMIUM, args=ARGS, base_url=base
            )
            page = context.new_page()
            page.goto("/login")
            page.get_by_label("Email").fill("ada@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/conversations")
            page.wait_for_function("() => navigator.serviceWorker.controller !== null")
            cdp = context.new_cdp_session(page)
            manifest = cdp.send("Page.getAppManifest")
            errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
            data = json.loads(manifest["data"])
            rows.append(
                (
                    "manifest parsed by Chromium",
                    f"{len(manifest['errors'])} errors",
                    "yes" if not manifest["errors"] else "**no**",
                )
            )
            rows.append(
                (
                    "installable (Page.getInstallabilityErrors)",
                    ", ".join(e["errorId"] for e in errors) or "no errors",
                    "yes" if not errors else "**no**",
                )
            )
            for icon in data["icons"]:
                response = page.request.get(icon["src"])
                image = Image.open(io.BytesIO(response.body()))
                ok = (
                    response.status == 200
                    and response.headers["content-type"] == "image/png"
                    and f"{image.width}x{image.height}" == icon["sizes"]
                )
                rows.append(
                    (
                        f"icon {icon['sizes']} ({icon['purpose']})",
                        f"{response.status}, {response.headers['content-type']}, "
                        f"{image.width}x{image.height}",
                        "yes" if ok else "**no**",
                    )
                )
            facts["shell_bytes"] = page.evaluate(
                """async () => {
                  let total = 0;
                  for (const name of await caches.keys()) {
                    if (!name.startsWith("chipper-shell-")) continue;
                    const cache = await caches.open(name);
                    for (const request of await cache.keys()) {
                      total += (await (await cache.match(request)).arrayBuffer()).byteLength;
                    }
                  }
                  return total;
                }"""
            )
            facts["manifest"] = data

            path = f"/conversations/{chat}"
            online = []
            for _ in range(runs):
                page.goto(path)
                online.append(load_time(page))
            context.set_offline(True)
            context.route(
                "**/*",
                lambda route: (
                    route.abort("internetdisconnected")
                    if route.request.service_worker is not None
                    else route.fallback()
                ),
            )
            offline, notices, complete = [], 0, 0
            for _ in range(runs):
                page.goto(path)
                offline.append(load_time(page))
                notices += page.locator("[data-offline-notice]").is_visible()
                complete += page.locator("#messages .message").count() == 50
            facts.update(online=online, offline=offline, notices=notices, complete=complete)
            context.close()
        server.shutdown()
        app.extensions["chipper.realtime"].close()
    return rows, facts


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="page loads online and offline")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)

    rows, facts = run(args.runs)
    online, offline = facts["online"], facts["offline"]
    rows += [
        (
            "conversation page (50 messages), online: load p50 / p90",
            f"{statistics.median(online):.0f} / {pct(online, 90):.0f} ms",
            "",
        ),
        (
            "the same page offline, from the saved copy: load p50 / p90",
            f"{statistics.median(offline):.0f} / {pct(offline, 90):.0f} ms "
            f"(x{statistics.median(offline) / statistics.median(online):.2f} of online)",
            "",
        ),
        (
            "offline loads showing all 50 messages / the offline notice",
            f"{facts['complete']} / {facts['notices']} of {args.runs}",
            "yes" if facts["complete"] == facts["notices"] == args.runs else "**no**",
        ),
        ("precached app shell", f"{facts['shell_bytes'] / 1024:.0f} KB", ""),
    ]
    table = ["| check | measured | passes |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(table)
    print(text)
    if not args.no_write:
        body = (
            f"Machine: {machine()}.  \n"
            f"Command: `.venv/bin/python bench/installability.py --runs {args.runs}`  \n"
            "Chromium's own answers through the DevTools protocol (Lighthouse 12 has no PWA "
            "audits any more); werkzeug's threaded server, SQLite.\n\n" + text
        )
        write_results(
            Path(args.results), "installability", "Installable app: Chromium's checks", body
        )


if __name__ == "__main__":
    main()
