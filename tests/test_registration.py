"""Who may join: the first account (the admin), registration modes, invite links, the admin
page's invites, the command line, and email addresses on private networks."""

import pytest
import sqlalchemy as sa

from chipper.models import Invite, User, utcnow
from chipper.services.accounts import CLOSED, FIRST_ACCOUNT, INVITE_ONLY
from chipper.services.invites import BAD_LINK
from tests.conftest import JSON, PASSWORD, as_json, text

OUTSIDE = {"REMOTE_ADDR": "203.0.113.7"}


def person(n: int, **extra) -> dict:
    return {"name": f"Person {n}", "email": f"person{n}@example.com", "password": PASSWORD, **extra}


def users(sql) -> list[tuple[str, bool]]:
    return sql.rows(sa.select(User.email, User.is_admin).order_by(User.id))


@pytest.fixture
def app_config():
    return {"REGISTRATION": "invite"}


@pytest.fixture
def admin(client, make, auth):
    """The server's first account, signed in on `client`."""
    user_id = make.user("Ada")
    auth.login(user_id)
    return user_id


def new_invite(client, **fields) -> str:
    response = client.post("/admin/invites", json={"uses": 1, "days": 7, **fields}, headers=JSON)
    assert response.status_code == 201, text(response)
    return as_json(response)["url"].split("invite=", 1)[1]


# The first account


def test_the_first_account_made_on_the_server_itself_is_the_admin(client, sql):
    page = client.get("/register")
    assert "Create the admin account" in text(page)
    assert 'name="password"' in text(page)
    response = client.post("/register", json=person(1), headers=JSON)
    assert response.status_code == 201, text(response)
    assert users(sql) == [("person1@example.com", True)]
    # The second account, even with the same rule, is not an admin (and needs an invite).
    other = client.application.test_client()
    assert other.post("/register", json=person(2), headers=JSON).status_code == 403


@pytest.mark.parametrize(
    "environ, headers",
    [(OUTSIDE, {}), ({}, {"X-Forwarded-For": "203.0.113.7"}), ({}, {"Forwarded": "for=1.2.3.4"})],
    ids=["another-machine", "through-a-proxy", "forwarded-header"],
)
def test_the_first_account_is_refused_from_elsewhere(client, sql, environ, headers):
    page = client.get("/register", environ_base=environ, headers=headers)
    assert page.status_code == 200
    assert FIRST_ACCOUNT.split(":")[0] in text(page)
    assert 'name="password"' not in text(page)
    response = client.post("/register", data=person(1), environ_base=environ, headers=headers)
    assert response.status_code == 403
    assert "first account" in text(response)
    api_headers = {**headers, **JSON}
    api = client.post("/register", json=person(1), environ_base=environ, headers=api_headers)
    assert api.status_code == 403 and "first account" in as_json(api)["error"]
    assert users(sql) == []


def test_the_setup_link_in_the_log_makes_the_first_account_from_anywhere(app, client, sql, caplog):
    with caplog.at_level("WARNING"):
        client.get("/register", environ_base=OUTSIDE)
    logged = [r.getMessage() for r in caplog.records if "setup=" in r.getMessage()]
    [link] = [message.rsplit(" ", 1)[1] for message in logged]
    setup = link.split("setup=", 1)[1]
    page = client.get(f"/register?setup={setup}", environ_base=OUTSIDE)
    assert f'name="setup" value="{setup}"' in text(page)
    wrong = client.post("/register", data=person(1, setup="0" * 32), environ_base=OUTSIDE)
    assert wrong.status_code == 403
    response = client.post("/register", data=person(1, setup=setup), environ_base=OUTSIDE)
    assert response.status_code == 303
    assert users(sql) == [("person1@example.com", True)]
    # Once the admin exists the setup link lets nobody else in.
    later = app.test_client().post("/register", json=person(2, setup=setup), headers=JSON)
    assert later.status_code == 403 and as_json(later)["error"] == INVITE_ONLY


@pytest.mark.parametrize("app_config", [{"REGISTRATION": "invite", "TRUSTED_PROXIES": 1}])
def test_behind_a_trusted_proxy_the_visitors_own_address_decides(client, sql):
    outside = {"X-Forwarded-For": "203.0.113.7"}
    assert client.post("/register", data=person(1), headers=outside).status_code == 403
    inside = {"X-Forwarded-For": "127.0.0.1"}
    assert client.post("/register", data=person(1), headers=inside).status_code == 303
    assert users(sql) == [("person1@example.com", True)]


# Registration modes


def test_invite_mode_without_a_link_explains_and_has_no_form(client, admin, sql):
    visitor = client.application.test_client()
    page = visitor.get("/register")
    assert page.status_code == 200
    assert INVITE_ONLY in text(page) and 'name="password"' not in text(page)
    assert "invite link someone on this server sent you" in text(visitor.get("/login"))
    response = visitor.post("/register", data=person(2))
    assert response.status_code == 403 and INVITE_ONLY in text(response)
    assert len(users(sql)) == 1


@pytest.mark.parametrize("app_config", [{"REGISTRATION": "closed"}])
def test_closed_mode_refuses_everyone_and_the_login_page_offers_no_account(client, make, sql):
    make.user("Ada")
    page = client.get("/register")
    assert CLOSED in text(page) and 'name="password"' not in text(page)
    assert "/register" not in text(client.get("/login")).split("</header>", 1)[1]
    response = client.post("/register", json=person(2), headers=JSON)
    assert response.status_code == 403 and as_json(response) == {"error": CLOSED}
    assert len(users(sql)) == 1


@pytest.mark.parametrize("app_config", [{"REGISTRATION": "open"}])
def test_open_mode_lets_anyone_in(client, make, sql):
    make.user("Ada")
    response = client.post("/register", data=person(2), environ_base=OUTSIDE)
    assert response.status_code == 303
    assert users(sql)[1] == ("person2@example.com", False)


# Invite links


def test_a_single_use_invite_lets_one_person_in(client, admin, sql):
    token = new_invite(client, note="for Bob")
    visitor = client.application.test_client()
    page = visitor.get(f"/register?invite={token}")
    assert page.status_code == 200 and f'name="invite" value="{token}"' in text(page)
    assert visitor.post("/register", data=person(2, invite=token)).status_code == 303
    second = client.application.test_client()
    again = second.get(f"/register?invite={token}")
    assert again.status_code == 403 and "used already" in text(again)
    refused = second.post("/register", json=person(3, invite=token), headers=JSON)
    assert refused.status_code == 403 and "used already" in as_json(refused)["error"]
    assert [email for email, _ in users(sql)][1:] == ["person2@example.com"]
    assert sql.scalar(sa.select(Invite.uses)) == 1


def test_only_the_hash_of_an_invite_is_stored(client, admin, sql):
    token = new_invite(client)
    stored = sql.scalar(sa.select(Invite.token_hash))
    assert token not in stored and len(stored) == 64
    assert token not in text(client.get("/admin"))


def test_a_multi_use_invite_counts_its_uses_and_any_number_means_any(client, admin, sql):
    token = new_invite(client, uses=2)
    unlimited = new_invite(client, uses=0, days=0)
    outcomes = [
        client.application.test_client().post("/register", data=person(n, invite=token))
        for n in (2, 3, 4)
    ]
    assert [r.status_code for r in outcomes] == [303, 303, 403]
    for n in range(5, 9):
        visitor = client.application.test_client()
        assert visitor.post("/register", data=person(n, invite=unlimited)).status_code == 303
    assert len(users(sql)) == 1 + 2 + 4


def test_an_expired_or_withdrawn_invite_gets_a_clear_page(client, admin, sql):
    expired = new_invite(client)
    sql.write(sa.update(Invite).values(expires_at=utcnow()))
    withdrawn = new_invite(client, note="Withdraw me")
    invite_id = sql.scalar(sa.select(Invite.id).where(Invite.note == "Withdraw me"))
    assert client.post(f"/admin/invites/{invite_id}/revoke").status_code == 303
    visitor = client.application.test_client()
    for token, words in [(expired, "expired"), (withdrawn, "withdrawn"), ("nonsense", BAD_LINK)]:
        page = visitor.get(f"/register?invite={token}")
        assert page.status_code == 403 and words in text(page)
        response = visitor.post("/register", data=person(2, invite=token))
        assert response.status_code == 403 and words in text(response)
    assert len(users(sql)) == 1


def test_a_refused_form_does_not_use_up_the_invite(client, admin, make, sql):
    token = new_invite(client)
    visitor = client.application.test_client()
    taken = visitor.post("/register", data=person(2, invite=token, email=make.email(admin)))
    assert taken.status_code == 422 and "already exists" in text(taken)
    short = visitor.post("/register", data=person(2, invite=token, password="short"))
    assert short.status_code == 422
    assert sql.scalar(sa.select(Invite.uses)) == 0
    assert visitor.post("/register", data=person(2, invite=token)).status_code == 303


def test_the_admin_page_makes_and_lists_invite_links_without_javascript(client, admin):
    response = client.post("/admin/invites", data={"uses": "3", "days": "2", "note": "club"})
    assert response.status_code == 201
    html = text(response)
    assert "shown only this once" in html and "/register?invite=" in html
    listing = text(client.get("/admin"))
    assert "club" in listing and "0 of 3" in listing and "Ada" in listing
    bad = client.post("/admin/invites", data={"uses": "many", "days": "2"})
    assert bad.status_code == 422 and "whole number" in text(bad)
    api = client.post("/admin/invites", json={"uses": -1}, headers=JSON)
    assert api.status_code == 422 and as_json(api)["field"] == "uses"


def test_the_admin_page_does_not_exist_for_anyone_else(client, admin, make, auth):
    bob = make.user("Bob")
    anonymous = client.application.test_client()
    assert anonymous.get("/admin").status_code == 303
    auth.logout()
    auth.login(bob)
    assert "Admin" not in text(client.get("/conversations")).split("</nav>")[0]
    assert client.get("/admin").status_code == 404
    assert client.post("/admin/invites", data={"uses": "1"}).status_code == 404
    assert client.post("/admin/invites/1/revoke").status_code == 404


# The command line


def test_create_admin_and_invite_from_the_command_line(app, runner, sql):
    made = runner.invoke(
        args=["create-admin", "--email", "Root@Home.Lan", "--name", "Root", "--password", PASSWORD]
    )
    assert made.exit_code == 0, made.output
    assert users(sql) == [("root@home.lan", True)]
    printed = runner.invoke(args=["invite", "--uses", "1", "--note", "for Bob"])
    assert printed.exit_code == 0, printed.output
    link = printed.output.strip().splitlines()[0]
    assert link.startswith("http://127.0.0.1:5000/register?invite=")
    visitor = app.test_client()
    joined = visitor.post("/register", data=person(2, invite=link.split("invite=")[1]))
    assert joined.status_code == 303
    promoted = runner.invoke(args=["create-admin", "--email", "person2@example.com"])
    assert promoted.exit_code == 0 and "is an admin now" in promoted.output
    assert users(sql) == [("root@home.lan", True), ("person2@example.com", True)]
    bad = runner.invoke(args=["invite", "--uses", "-3"])
    assert bad.exit_code != 0 and "between 0" in bad.output


# Email addresses


@pytest.mark.parametrize("app_config", [{"REGISTRATION": "open"}])
@pytest.mark.parametrize(
    "email", ["ada@home.local", "bob@nas.lan", "c@box.test", "d@localhost", "e@router.home.arpa"]
)
def test_addresses_on_private_networks_are_accepted(client, email, sql):
    response = client.post("/register", json=person(1, email=email), headers=JSON)
    assert response.status_code == 201, text(response)
    assert users(sql) == [(email, True)]


@pytest.mark.parametrize(
    "app_config", [{"REGISTRATION": "open", "EMAIL_DOMAINS": ["example.org", "home.lan"]}]
)
def test_an_allow_list_of_domains_limits_who_registers(client, sql):
    refused = client.post("/register", json=person(1, email="a@example.com"), headers=JSON)
    assert refused.status_code == 422
    assert as_json(refused) == {
        "error": "This server takes addresses at example.org, home.lan only.",
        "field": "email",
    }
    accepted = client.post("/register", json=person(1, email="A@Home.LAN"), headers=JSON)
    assert accepted.status_code == 201
