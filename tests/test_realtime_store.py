"""The events table on its own (chipper.realtime.store): gap-free numbers under concurrent
writers, pruning. In process, on the suite's database; no server, no stream."""

import threading

import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import Event, EventRecipient, User, utcnow
from chipper.realtime import store


def test_sequences_have_no_gaps_or_repeats_under_concurrent_writes(app, make, login_client):
    """Senders in three conversations with Bob, while the group's creator removes and re-adds
    a member (two events in one transaction): every request succeeds, and each user's numbers
    are exactly 1..n (a repeat would break the primary key, a deadlock would be a 500)."""
    ada, bob, cara, dan = (make.user(n) for n in ("Ada", "Bob", "Cara", "Dan"))
    group = make.group(ada, [bob, cara, dan], "Team")
    chats = {cara: make.private(cara, bob), dan: make.private(dan, bob)}
    clients = {uid: login_client(uid) for uid in (ada, cara, dan)}
    statuses, start = [], threading.Barrier(4, timeout=10)
    json = {"Accept": "application/json"}

    def send(uid, conversation_id):
        start.wait()
        for n in range(15):
            response = clients[uid].post(
                f"/conversations/{conversation_id}/messages", data={"body": f"{n}"}, headers=json
            )
            statuses.append(response.status_code)

    def churn():
        start.wait()
        for _ in range(6):
            for method, path, body in (
                ("DELETE", f"/conversations/{group}/participants/{cara}", None),
                ("POST", f"/conversations/{group}/participants", {"user_ids": [cara]}),
            ):
                response = clients[ada].open(path, method=method, json=body, headers=json)
                statuses.append(response.status_code)

    threads = [
        threading.Thread(target=send, args=(ada, group)),
        threading.Thread(target=send, args=(cara, chats[cara])),
        threading.Thread(target=send, args=(dan, chats[dan])),
        threading.Thread(target=churn),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(set(statuses)) <= [200, 201, 204], statuses
    assert len(statuses) == 45 + 12

    counts = {}
    with app.app_context():
        for uid in (ada, bob, cara, dan):
            seqs = db.session.scalars(
                sa.select(EventRecipient.seq)
                .where(EventRecipient.user_id == uid)
                .order_by(EventRecipient.seq)
            ).all()
            assert seqs == list(range(1, len(seqs) + 1))
            assert db.session.get(User, uid).event_seq == len(seqs)
            counts[uid] = len(seqs)
    # Bob: the three conversations' creation, 45 messages, 12 member changes in the group.
    assert counts[bob] == 3 + 45 + 12


def test_old_events_are_pruned_with_their_recipients(app, make):
    """A week-old event is no longer kept for replay; newer ones stay."""
    ada, bob = make.user("Ada"), make.user("Bob")
    conversation = make.private(ada, bob)
    make.message(ada, conversation, "old")
    with app.app_context():
        old = utcnow().replace(year=utcnow().year - 1)
        db.session.execute(sa.update(Event).values(created_at=old))
        db.session.commit()
    make.message(bob, conversation, "new")
    with app.app_context():
        assert store.prune() == 2  # conversation-created and the old message
        kinds = db.session.scalars(sa.select(Event.kind)).all()
        assert kinds == ["message-created"]
        recipients = db.session.scalar(sa.select(sa.func.count()).select_from(EventRecipient))
        assert recipients == 2
