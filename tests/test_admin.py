"""The admin page's controls: deactivate and reactivate accounts (their sign-ins and streams
end at once, their messages stay), make and remove admins (never the last), and the audit log."""

import sqlalchemy as sa

from chipper.models import AuditEntry, Message, User
from tests.conftest import JSON, PASSWORD, as_json, text
from tests.realtime_support import wait_for


def admins(sql) -> list[str]:
    return sql.scalars(sa.select(User.name).where(User.is_admin.is_(True)).order_by(User.id))


def audit(sql) -> list[tuple]:
    return sql.rows(sa.select(AuditEntry.action, AuditEntry.target_id).order_by(AuditEntry.id))


def test_a_deactivated_account_is_out_at_once_and_its_messages_stay(app, make, auth, client, sql):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    make.message(bob, chat, "Bob was here")
    bobs = app.test_client()
    bobs.post("/login", json={"email": make.email(bob), "password": PASSWORD}, headers=JSON)
    assert bobs.get("/conversations", headers=JSON).status_code == 200
    auth.login(ada)
    response = client.post(f"/admin/users/{bob}/deactivate")
    assert response.status_code == 303
    assert bobs.get("/conversations", headers=JSON).status_code == 401
    again = bobs.post("/login", json={"email": make.email(bob), "password": PASSWORD}, headers=JSON)
    assert again.status_code == 401
    assert sql.scalar(sa.select(Message.body).where(Message.user_id == bob)) == "Bob was here"
    page = text(client.get("/admin"))
    assert "deactivated" in page and "Reactivate" in page
    assert "Ada deactivated Bob" in page
    assert client.post(f"/admin/users/{bob}/reactivate", headers=JSON).status_code == 200
    back = bobs.post("/login", json={"email": make.email(bob), "password": PASSWORD}, headers=JSON)
    assert back.status_code == 200
    assert audit(sql) == [("deactivated", bob), ("reactivated", bob)]


def test_admins_are_made_and_removed_but_never_the_last_one(app, make, auth, client, sql):
    ada, bob = make.user("Ada"), make.user("Bob")
    auth.login(ada)
    assert client.post(f"/admin/users/{bob}/make-admin").status_code == 303
    assert admins(sql) == ["Ada", "Bob"]
    assert client.post(f"/admin/users/{bob}/remove-admin").status_code == 303
    assert admins(sql) == ["Ada"]
    # Bob, made admin again, removes Ada; then he is the last and cannot be removed.
    client.post(f"/admin/users/{bob}/make-admin")
    auth.logout()
    auth.login(bob)
    assert client.post(f"/admin/users/{ada}/remove-admin").status_code == 303
    last = client.post(f"/admin/users/{bob}/remove-admin", headers=JSON)
    assert last.status_code == 409 and "at least one admin" in as_json(last)["error"]
    own = client.post(f"/admin/users/{bob}/deactivate")
    assert own.status_code == 409 and "your own account" in text(own)
    assert admins(sql) == ["Bob"]
    # Ada is no admin any more: the page is gone for her.
    auth.logout()
    auth.login(ada)
    assert client.get("/admin").status_code == 404
    assert client.post(f"/admin/users/{bob}/deactivate").status_code == 404


def test_unknown_accounts_and_actions_are_404(make, auth, client):
    ada = make.user("Ada")
    auth.login(ada)
    assert client.post("/admin/users/999/deactivate").status_code == 404
    assert client.post(f"/admin/users/{ada}/explode").status_code == 404


def test_invite_links_are_in_the_audit_log(make, auth, client, sql):
    auth.login(make.user("Ada"))
    client.post("/admin/invites", data={"uses": "2", "days": "3", "note": "climbers"})
    invite_id = sql.scalar(sa.select(sa.text("id")).select_from(sa.table("invites")))
    client.post(f"/admin/invites/{invite_id}/revoke")
    assert [action for action, _ in audit(sql)] == ["made an invite", "withdrew an invite"]
    assert "for 2 people, 3 days: climbers" in text(client.get("/admin"))


def test_deactivating_closes_the_accounts_open_streams(live, visit, make, client, auth):
    ada, bob = make.user("Ada"), make.user("Bob")
    stream = visit(bob).stream()
    wait_for(stream, lambda e: e.name == "hello")
    admin = visit(ada)
    assert admin.request("POST", f"/admin/users/{bob}/deactivate").status_code == 200
    wait_for(stream, lambda e: e.name == "signed-out", timeout=5)
    stream._thread.join(5)
    assert not stream._thread.is_alive()
