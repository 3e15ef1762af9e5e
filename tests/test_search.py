"""Search: your messages that match, best first, across your conversations or within one; a
page with or without JavaScript, and JSON. The same on SQLite and PostgreSQL (the suite runs
on both)."""

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chipper import search_query
from chipper.extensions import db
from chipper.models import User
from chipper.services import search
from chipper.services.messages import delete_message
from tests.conftest import HTMX, JSON, _empty_tables, text


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


def found(client, q: str, **params) -> list[str]:
    """The bodies of the messages a search finds, best first (`client` is Ada's)."""
    response = client.get("/search", query_string={"q": q, **params}, headers=JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [r["message"]["body"] for r in response.get_json()["results"]]


# Reading what is typed


def test_words_phrases_exclusions_and_or_are_read_like_a_web_search_box():
    query = search_query.parse('Café "tea pot" -milk or sugar')
    groups = [[("cafe",)], [("tea", "pot")], [("sugar",)]]
    assert [[t.words for t in g] for g in query.groups] == groups
    assert [t.words for t in query.excluded] == [("milk",)]
    # "or" joins the word after it to the choice before it.
    query = search_query.parse("tea or coffee -milk")
    assert [[t.words for t in g] for g in query.groups] == [[("tea",), ("coffee",)]]
    assert [t.words for t in query.excluded] == [("milk",)]
    assert search_query.fts5(query) == '(("tea"* OR "coffee"*)) NOT "milk"*'
    assert search_query.tsquery(query) == "('tea':* | 'coffee':*) & !'milk':*"
    assert search_query.tsquery(search_query.parse('"tea pot"')) == "('tea' <-> 'pot')"


@pytest.mark.parametrize(
    "typed",
    ['"', '""', "*", "-", "- -", "NEAR(a b)", "a:b", "'", "\\", "(", ") OR (", "^", "or", "🙂"],
)
def test_syntax_of_either_database_is_only_punctuation(typed):
    query = search_query.parse(typed)
    for term in query.terms + query.excluded:
        assert all(w.isalnum() or "_" in w for w in term.words)


def test_a_snippet_is_escaped_then_marked():
    query = search_query.parse("bisc")
    shown = search_query.snippet("<b>Biscuits</b> & tea", query)
    assert shown == "&lt;b&gt;<mark>Biscuits</mark>&lt;/b&gt; &amp; tea"
    long = "word " * 60 + "the biscuits are here " + "more " * 60
    shown = search_query.snippet(long, query)
    assert shown.startswith("…") and shown.endswith("…") and "<mark>biscuits</mark>" in shown
    assert len(shown) < 220


# Finding


def test_finds_words_by_their_start_without_accents_best_first(client, make, ada, bob, chat):
    make.message(bob, chat, "The café on the corner")
    make.message(bob, chat, "Biscuits, biscuits and more biscuits")
    make.message(bob, chat, "A biscuit tin")
    make.message(ada, chat, "Nothing to see")
    assert found(client, "cafe") == ["The café on the corner"]
    assert found(client, "CAFÉ") == ["The café on the corner"]
    # The message that says it most comes first.
    assert found(client, "bisc") == ["Biscuits, biscuits and more biscuits", "A biscuit tin"]
    assert found(client, "zebra") == []


def test_phrases_exclusions_and_choices(client, make, bob, chat):
    for body in ("green tea pot", "tea green", "black tea", "coffee pot"):
        make.message(bob, chat, body)
    assert found(client, '"green tea"') == ["green tea pot"]
    assert sorted(found(client, "tea -black")) == ["green tea pot", "tea green"]
    assert sorted(found(client, "black or coffee")) == ["black tea", "coffee pot"]
    assert found(client, "-tea") == []  # only leaving out finds nothing


def test_a_file_is_found_by_its_name(client, ada, chat):
    image = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(image, "PNG")
    sent = client.post(
        f"/conversations/{chat}/messages",
        data={"body": "", "file": (io.BytesIO(image.getvalue()), "holiday-map.png")},
        headers=JSON,
    )
    assert sent.status_code == 201
    response = client.get("/search", query_string={"q": "holiday map"}, headers=JSON)
    (hit,) = response.get_json()["results"]
    assert hit["message"]["id"] == sent.get_json()["id"]
    assert "<mark>holiday</mark>" in hit["snippet"]


def test_an_edit_and_a_deletion_keep_the_index_in_step(client, make, ada, chat):
    sent = make.message(ada, chat, "meet at the station")
    assert found(client, "station") == ["meet at the station"]
    client.patch(f"/messages/{sent}", json={"body": "meet at the harbour"}, headers=JSON)
    assert found(client, "station") == []
    assert found(client, "harbour") == ["meet at the harbour"]
    client.delete(f"/messages/{sent}", headers=JSON)
    assert found(client, "harbour") == []


def test_only_your_conversations_and_one_when_asked(client, make, ada, bob, cara, chat):
    theirs = make.private(bob, cara)
    make.message(bob, theirs, "secret picnic plans")
    group = make.group(ada, [cara], "Picnic club")
    make.message(cara, group, "picnic on Sunday")
    make.message(bob, chat, "picnic with Bob")
    assert sorted(found(client, "picnic")) == ["picnic on Sunday", "picnic with Bob"]
    assert found(client, "picnic", conversation_id=group) == ["picnic on Sunday"]
    # Someone else's conversation, or none: as if it did not exist.
    for other in (theirs, 999_999, "abc"):
        response = client.get(
            "/search", query_string={"q": "picnic", "conversation_id": other}, headers=JSON
        )
        assert response.status_code == 404


def test_twenty_a_page_then_the_next(client, make, bob, chat):
    for n in range(45):
        make.message(bob, chat, f"note number {n}")
    seen, after = [], None
    for _ in range(3):
        params = {"q": "note", **({"after": after} if after else {})}
        body = client.get("/search", query_string=params, headers=JSON).get_json()
        seen += [r["message"]["id"] for r in body["results"]]
        after = body["next"]
    assert len(seen) == 45 and len(set(seen)) == 45 and after is None
    # A page mark that is not one starts from the top.
    body = client.get("/search?q=note&after=nonsense", headers=JSON).get_json()
    assert len(body["results"]) == 20


@pytest.mark.parametrize(
    "typed",
    ['"', "'", "*", "-", '"unclosed', "a AND", "NOT", "NEAR(x y)", "x:*", "!", "|", "&",
     "a" * 1000, "\x00", "(((", "🙂 🙂"],
)  # fmt: skip
def test_strange_queries_answer_never_fail(client, make, bob, chat, typed):
    make.message(bob, chat, "plain words")
    response = client.get("/search", query_string={"q": typed}, headers=JSON)
    assert response.status_code == 200
    assert isinstance(response.get_json()["results"], list)
    assert client.get("/search", query_string={"q": typed}).status_code == 200


# The page


def test_the_page_shows_each_hit_with_its_place_and_a_link_to_it(client, make, bob, chat):
    hit = make.message(bob, chat, "Bring <the> biscuits")
    html = text(client.get("/search?q=biscuits"))
    assert "Bring &lt;the&gt; <mark>biscuits</mark>" in html
    assert f'href="/conversations/{chat}?around={hit}#m{hit}"' in html
    assert "Bob" in html and "Today" in html
    # The history there marks the hit.
    around = text(client.get(f"/conversations/{chat}?around={hit}"))
    assert 'class="message hit"' in around
    assert "No messages match" in text(client.get("/search?q=zebra"))


def test_the_list_and_the_conversation_have_a_search_box(client, chat):
    listing = text(client.get("/conversations"))
    assert 'action="/search"' in listing and 'name="q"' in listing
    conversation = text(client.get(f"/conversations/{chat}"))
    assert f'href="/search?conversation_id={chat}"' in conversation
    within = text(client.get(f"/search?conversation_id={chat}"))
    assert f'name="conversation_id" value="{chat}"' in within
    assert "Search in Bob" in within


def test_more_results_come_as_a_fragment_with_htmx(client, make, bob, chat):
    for n in range(25):
        make.message(bob, chat, f"note number {n}")
    first = client.get("/search?q=note", headers=JSON).get_json()
    html = text(
        client.get(
            "/search",
            query_string={"q": "note", "after": first["next"]},
            headers={**HTMX, "HX-Target": "more-results"},
        )
    )
    assert "<html" not in html and html.count('class="search-hit"') == 5


def test_signed_out_visitors_are_sent_to_sign_in(app):
    response = app.test_client().get("/search?q=x")
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


# Whatever the memberships: every hit is one of the searcher's, not deleted


WORDS = ["apple", "pear", "plum"]


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(
        st.tuples(
            st.integers(0, 2),  # which conversation
            st.sampled_from(WORDS),
            st.booleans(),  # deleted afterwards
        ),
        min_size=1,
        max_size=8,
    ),
    members=st.lists(st.booleans(), min_size=3, max_size=3),  # Ada in each or not
)
def test_every_hit_is_the_searchers_and_not_deleted(app, make, plan, members):
    with app.app_context():
        _empty_tables()  # each example from empty tables
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    rooms = [
        make.group(bob, [cara, ada] if inside else [cara], f"Room {n}")
        for n, inside in enumerate(members)
    ]
    shown = set()
    for where, word, deleted in plan:
        message_id = make.message(bob, rooms[where], f"{word} pie")
        if deleted:
            with app.app_context():
                delete_message(db.session.get(User, bob), message_id)
        elif members[where]:
            shown.add((message_id, word))
    with app.app_context():
        for word in WORDS:
            hits = search.search(db.session.get(User, ada), word).hits
            assert {h.message.id for h in hits} == {m for m, w in shown if w == word}
