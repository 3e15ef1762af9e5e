"""axe-core on every kind of page, at phone and desktop sizes, light and dark: no serious or
critical violation. A new one fails the test with axe's own description of it."""

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.test_look import DESKTOP, PHONE

pytestmark = pytest.mark.browser

AXE = Axe()
SERIOUS = {"serious", "critical"}


def problems(page: Page, shot: Path | None = None) -> list[str]:
    """What axe finds serious or worse on the page as it stands, one line per element; with
    `shot`, a screenshot of the page too (for people to look at, never compared)."""
    page.wait_for_load_state("networkidle")
    if shot:
        page.screenshot(path=shot)
    results = AXE.run(page).response["violations"]
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {node['target']}: {node['failureSummary']}"
        for v in results
        if v["impact"] in SERIOUS
        for node in v["nodes"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_serious_accessibility_problem_on_any_page(browse, make, artifacts, size, scheme):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    private = make.private(ada, bob)
    group = make.group(ada, [bob, cara], name="Allotment")
    make.message(bob, private, "Tomatoes are in")
    make.message(ada, private, "Great, I bring a basket")
    make.message(cara, group, "Who waters on Sunday?")
    page = browse.page(width=size[0], height=size[1])
    page.emulate_media(color_scheme=scheme)
    folder = artifacts / "pages"
    folder.mkdir(exist_ok=True)

    def check(name: str) -> list[str]:
        return problems(
            page, folder / f"{name}-{'phone' if size == PHONE else 'desktop'}-{scheme}.png"
        )

    found = []
    for path in ("/login", "/register"):
        page.goto(path)
        found += check(path.strip("/"))
    browse.log_in(page, make.email(ada))
    for name, path in (
        ("list", "/conversations"),
        ("new", "/conversations/new"),
        ("private", f"/conversations/{private}"),
        ("group", f"/conversations/{group}"),
        ("details", f"/conversations/{group}/details"),
        ("account", "/account"),
    ):
        page.goto(path)
        found += check(name)
    if size == DESKTOP:
        # The details as the side panel, open beside the conversation.
        page.goto(f"/conversations/{group}")
        page.get_by_role("link", name=re.compile("group details")).click()
        expect(page.locator("#details-panel")).to_be_visible()
        found += check("details-panel")
    page.goto(f"/conversations/{group}")
    page.get_by_role("button", name="Video call").click()
    expect(page.locator(".call-controls")).to_be_visible()
    # The controls stay in view during the call, at both sizes.
    hang_up = page.locator(".call-controls").get_by_role("button", name="Hang up")
    assert hang_up.bounding_box()["y"] + hang_up.bounding_box()["height"] <= size[1]
    found += check("call")
    hang_up.click()
    assert found == []


def test_the_check_finds_a_problem_when_there_is_one(browse, make):
    """Control: the same check on a page made worse (grey on grey, a button without a name)."""
    page = browse.page()
    page.goto("/login")
    assert problems(page) == []
    page.evaluate(
        """() => {
          document.querySelector("h1").style.color = "#bbb";
          document.querySelector("button[type=submit]").textContent = "";
        }"""
    )
    found = " ".join(problems(page))
    assert "color-contrast" in found and "button-name" in found
