"""The installable app in Chromium: manifest and installability, the service worker, reading
offline, logging out, sending while offline, push notifications and the app badge.

Playwright's context.set_offline() cuts the pages' network but not the service worker's
(microsoft/playwright#2311), so `go_offline` also aborts every request the worker makes,
as a real loss of connection would.
"""

import io
import json
import re
import time

import pytest
import sqlalchemy as sa
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect
from py_vapid import Vapid02

from chipper.models import Message
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Browse
from tests.push_support import Browser, PushService

pytestmark = pytest.mark.browser

CONTROLLED = "() => navigator.serviceWorker.controller !== null"
# Every URL in every cache the page's origin holds.
CACHED_URLS = """async () => {
  const urls = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) urls.push(new URL(request.url).pathname);
  }
  return urls;
}"""


@pytest.fixture(scope="module")
def vapid_pem() -> str:
    vapid = Vapid02()
    vapid.generate_keys()
    return vapid.private_pem().decode()


@pytest.fixture
def app_config(vapid_pem) -> dict:
    # Push turned on, towards a push service played by a local HTTP server.
    return {"VAPID_PRIVATE_KEY": vapid_pem, "PUSH_ALLOW_PRIVATE_ENDPOINTS": True}


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


def signed_in(browse, make, user_id: int, javascript: bool = True) -> Page:
    page = browse.page(javascript=javascript)
    browse.log_in(page, make.email(user_id))
    return page


def controlled(page: Page) -> None:
    """Waits until the service worker is active and answers this page's requests (a page
    that loaded while it was activating asks it to claim the page, see pwa.js)."""
    page.wait_for_function(CONTROLLED)


def saved_pages(page: Page) -> list[str]:
    return page.evaluate(
        """async () => {
          const cache = await caches.open("chipper-pages");
          return (await cache.keys()).map((r) => new URL(r.url).pathname);
        }"""
    )


def wait_until_saved(page: Page, path: str) -> None:
    page.wait_for_function(
        """async (path) => {
          const cache = await caches.open("chipper-pages");
          return (await cache.keys()).some((r) => new URL(r.url).pathname === path);
        }""",
        arg=path,
        polling=100,
    )


def go_offline(context: BrowserContext) -> None:
    context.set_offline(True)

    def cut(route):
        if route.request.service_worker is not None:
            route.abort("internetdisconnected")
        else:
            route.fallback()

    context.route("**/*", cut)


def go_online(context: BrowserContext) -> None:
    context.unroute("**/*")
    context.set_offline(False)


def test_manifest_is_valid_and_chromium_finds_the_page_installable(
    playwright, live_server, make, tmp_path
):
    # A profile on disk: Chromium never offers to install from an incognito-like context,
    # which is what new_context() makes.
    context = playwright.chromium.launch_persistent_context(
        tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_ARGS, base_url=live_server
    )
    page = context.new_page()
    ada = make.user("Ada")
    Browse(None, live_server).log_in(page, make.email(ada))
    controlled(page)

    cdp = page.context.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]
    data = json.loads(manifest["data"])
    assert data["start_url"] == "/conversations"
    assert data["display"] == "standalone"
    assert data["share_target"]["action"] == "/share"
    assert [s["url"] for s in data["shortcuts"]] == ["/conversations/new"]
    purposes = set()
    for icon in data["icons"]:
        response = page.request.get(icon["src"])
        assert response.status == 200 and response.headers["content-type"] == "image/png"
        width, height = Image.open(io.BytesIO(response.body())).size
        assert f"{width}x{height}" == icon["sizes"]
        purposes.add(icon["purpose"])
    assert purposes == {"any", "maskable"}
    assert {icon["sizes"] for icon in data["icons"]} >= {"192x192", "512x512"}

    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    context.close()
    assert errors == [], errors


def test_a_conversation_opened_from_the_list_is_saved_and_opens_offline(browse, make):
    """Opened from the list, only its pane is swapped in: the worker still saves the whole
    page, and offline the row opens that copy instead of failing."""
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    make.message(bob, chat, "Read me on the train")
    page = signed_in(browse, make, ada)
    controlled(page)
    page.goto("/conversations")
    wait_until_saved(page, "/conversations")
    page.locator(f"#conversation-{chat} a").click()
    expect(page.locator("#messages")).to_contain_text("Read me on the train")
    wait_until_saved(page, f"/conversations/{chat}")

    go_offline(page.context)
    page.goto("/conversations")
    page.locator(f"#conversation-{chat} a").click()
    expect(page).to_have_url(re.compile(rf"/conversations/{chat}$"))
    expect(page.locator("#messages")).to_contain_text("Read me on the train")
    expect(page.locator("[data-offline-notice]")).to_contain_text("Showing a saved copy")


def test_a_conversation_opened_before_can_be_read_offline(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    for n in range(1, 4):
        make.message(bob, chat, f"Note number {n}")
    page = signed_in(browse, make, ada)
    controlled(page)
    page.goto("/conversations")
    page.goto(f"/conversations/{chat}")
    expect(page.locator("#messages").get_by_text("Note number 3")).to_be_visible()
    wait_until_saved(page, f"/conversations/{chat}")
    wait_until_saved(page, "/conversations")
    notice = page.locator("[data-offline-notice]")
    expect(notice).to_be_hidden()

    go_offline(page.context)
    page.goto(f"/conversations/{chat}")
    for n in range(1, 4):
        expect(page.locator("#messages").get_by_text(f"Note number {n}")).to_be_visible()
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Offline.")
    expect(notice).to_contain_text("Showing a saved copy from")

    page.goto("/conversations")
    expect(page.get_by_role("link", name=re.compile("Bob"))).to_be_visible()
    expect(notice).to_contain_text("Showing a saved copy")

    # A page this device never saved: the offline page, which says so.
    page.goto("/conversations/new")
    expect(page.get_by_role("heading", name="You are offline")).to_be_visible()

    # Back online, a saved copy makes way for the real page by itself.
    page.goto(f"/conversations/{chat}")
    expect(notice).to_be_visible()
    make.message(bob, chat, "Written while Ada was offline")
    go_online(page.context)
    expect(page.locator("#messages").get_by_text("Written while Ada was offline")).to_be_visible()
    expect(notice).to_be_hidden()


def test_logging_out_leaves_no_private_page_on_the_device(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    make.message(bob, chat, "Secret plans")
    page = signed_in(browse, make, ada)
    controlled(page)
    page.goto(f"/conversations/{chat}")
    wait_until_saved(page, f"/conversations/{chat}")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.wait_for_function(
        f"""async () => {{
          const urls = await ({CACHED_URLS})();
          return !urls.some((u) => u.startsWith("/conversations"));
        }}""",
        polling=100,
    )

    # Offline now, the conversation is not there to read.
    controlled(page)
    go_offline(page.context)
    page.goto(f"/conversations/{chat}")
    expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
    expect(page.get_by_text("Secret plans")).to_have_count(0)


def test_sending_while_offline_keeps_the_text_and_sends_it_once_later(browse, make, sql):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    page = signed_in(browse, make, ada)
    controlled(page)
    page.goto(f"/conversations/{chat}")
    wait_until_saved(page, f"/conversations/{chat}")
    box = page.get_by_label("Message", exact=True)

    go_offline(page.context)
    expect(page.locator("[data-offline-notice]")).to_be_visible()
    box.fill("Sent from the train")
    page.locator("#composer").get_by_role("button", name="Send").click()
    expect(page.locator("#toast")).to_contain_text("offline")
    expect(box).to_have_value("Sent from the train")
    assert sql.scalar(sa.select(sa.func.count()).select_from(Message)) == 0

    # Reloaded while offline, the tab comes back from the saved copy with the text kept.
    page.reload()
    expect(page.locator("[data-saved-copy]")).to_be_visible()
    expect(box).to_have_value("Sent from the train")

    go_online(page.context)
    # The saved copy reloads into the live page by itself; the draft is still there.
    expect(page.locator("[data-offline-notice]")).to_be_hidden()
    expect(box).to_have_value("Sent from the train")
    with page.expect_response(lambda r: r.request.method == "POST" and r.status == 201):
        page.locator("#composer").get_by_role("button", name="Send").click()
    sent = page.locator("#messages .message").filter(has_text="Sent from the train")
    expect(sent).to_have_count(1)
    expect(box).to_have_value("")
    assert sql.scalars(sa.select(Message.body)) == ["Sent from the train"]
    page.reload()  # sent: the draft is gone
    expect(box).to_have_value("")


# Pretends the tab went to the background: Playwright's pages are always "visible".
HIDE_TAB = """() => {
  Object.defineProperty(document, "visibilityState", { get: () => "hidden", configurable: true });
  Object.defineProperty(document, "hidden", { get: () => true, configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
STREAM_HELLO = """
window.__hello = false;
document.addEventListener("htmx:sseOpen", (e) => {
  e.detail.source.addEventListener("hello", () => { window.__hello = true; });
});
"""


SHOWN_NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.ready;
  const shown = await registration.getNotifications();
  return shown.map((n) => [n.title, n.body, n.tag, n.data.url]);
}"""


def test_a_message_to_a_hidden_tab_becomes_a_notification(app, browse, make, push_service):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    page = browse.page()
    page.context.grant_permissions(["notifications"])
    page.add_init_script(STREAM_HELLO)
    browse.log_in(page, make.email(ada))
    controlled(page)
    page.reload()
    controlled(page)
    page.wait_for_function("() => window.__hello === true")

    # Ada's browser subscribes (headless Chromium has no push service of its own: the
    # subscription points at the local one, with keys the test holds).
    keys = Browser()
    response = browse.post(
        page,
        "/push/subscriptions",
        data=json.dumps(keys.subscription(push_service.endpoint("ada"))),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 201

    # While her tab is visible she sees the message there, and gets no notification (the
    # server knows the tab is visible before the message is sent).
    presence = app.extensions["chipper.realtime"].presence
    deadline = time.monotonic() + 10
    while ada not in presence.watching([ada]) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert page.evaluate("document.visibilityState") == "visible"
    assert presence.watching([ada]) == {ada}
    make.message(bob, chat, "Seen on the page")
    expect(page.get_by_role("link", name=re.compile("Seen on the page"))).to_be_visible()
    # Then the tab goes to the background: pwa.js tells the server, and the next message
    # is pushed.
    with page.expect_response(lambda r: r.url.endswith("/stream/visibility")) as answer:
        page.evaluate(HIDE_TAB)
    assert answer.value.status == 204
    make.message(bob, chat, "Dinner at eight?")
    (received,) = push_service.wait("ada")
    payload = keys.read(received)
    assert payload["body"] == "Dinner at eight?"
    assert push_service.to("ada") == [received]  # nothing for the first message

    # The push service hands the message to the browser's service worker, which shows it.
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 10
    while not registrations and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    (registration,) = [r for r in registrations if not r["isDeleted"]]
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": browse.base_url,
            "registrationId": registration["registrationId"],
            "data": json.dumps(payload),
        },
    )
    notifications = []
    deadline = time.monotonic() + 10
    while not notifications and time.monotonic() < deadline:
        notifications = page.evaluate(SHOWN_NOTIFICATIONS)
        page.wait_for_timeout(100)
    assert notifications == [
        ["Bob", "Dinner at eight?", f"conversation-{chat}", f"/conversations/{chat}"]
    ]


BADGE_SPY = """
window.__badges = [];
navigator.setAppBadge = (n) => { window.__badges.push(n); return Promise.resolve(); };
navigator.clearAppBadge = () => { window.__badges.push(0); return Promise.resolve(); };
"""


def test_the_app_badge_follows_the_unread_count(browse, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    page = browse.page()
    page.add_init_script(BADGE_SPY)
    page.add_init_script(STREAM_HELLO)
    browse.log_in(page, make.email(ada))
    page.wait_for_function("() => window.__hello === true")
    assert page.evaluate("() => window.__badges") == [0]

    # Several in quick succession: each frame may land while the last refresh is in flight.
    for n in range(5):
        make.message(bob, chat, f"Message {n}")
    page.wait_for_function("() => window.__badges.at(-1) === 5", polling=100)
    assert page.locator("#nav-unread .badge").inner_text().startswith("5")

    page.goto(f"/conversations/{chat}")  # reading them clears it
    page.wait_for_function("() => window.__badges.at(-1) === 0", polling=100)
