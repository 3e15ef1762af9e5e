#!/usr/bin/env python
"""Search benchmark (issue 17): how long the app's own search() takes on a big database.
Not a test.

    .venv/bin/python bench/search.py run                      # both databases; seeds if needed
    .venv/bin/python bench/search.py run --db sqlite --small  # a quick check (20,000 messages)
    .venv/bin/python bench/search.py seed --db postgresql     # seed again, whatever is there
    .venv/bin/python bench/search.py run --write              # and rewrite bench/RESULTS.md's
    .venv/bin/python bench/search.py report --write           # the same from the saved results
    .venv/bin/python bench/search.py drop --db postgresql     # remove the bench's database

The data: 1,000,000 messages in 10,000 conversations among 1,000 users (--messages,
--conversations, --users), seeded once and kept for later runs: a SQLite file under
/tmp/chipper-bench-search/, a database of its own on the PostgreSQL server (--postgresql, never
the `test` database). User 1, the searcher, is in 1,000 of the conversations (--member-of), so
about a tenth of the messages are theirs to find. Message texts draw their words from a Zipf
distribution over 4,000 words (the most common English chat words first, then made-up ones), so
the commonest words are in a large share of the messages; one message in five also has one of
a long tail of rare words, each in about 5 messages. The rows go in by the driver in bulk
(executemany in big transactions on SQLite, COPY on PostgreSQL), the search index too: its
document is built by the app's own functions (search_query.document of formatting.plain_text)
and stored as services/search.index stores it (the text in FTS5's table; to_tsvector('simple',
...) in PostgreSQL's, whose GIN index is built after the load).

What it measures: on one warmed-up connection, inside an app context, the wall time of
`chipper.services.search.search(user, text)` (the verb the /search page calls: the ranked SQL,
loading the 20 hits with their conversations, the snippets), --queries times (200) for each
case: a common word, a word of middling frequency, a rare word, two words, the first three
letters of a word (a prefix), and a common word within one conversation. Every query of every
case is run once before the timing. It reports the median and p99 per case, the share of the
time spent in the ranked SQL statement, whether p99 < 50 ms (the target), the CPU the
hypervisor stole and the rest of the machine used meanwhile (/proc/stat), and the plan of the
ranked statement for a common word (EXPLAIN QUERY PLAN; EXPLAIN ANALYZE on PostgreSQL).
Results are kept in /tmp/chipper-bench-search/results-*.json; --write puts the latest of each
database into the `search` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this checkout's chipper
sys.path.insert(0, str(HERE))

from fanout import (  # noqa: E402 (bench/ is not a package)
    CLK_TCK,
    machine,
    postgres_pids,
    python_speed,
)

WORK = Path("/tmp/chipper-bench-search")
RESULTS = HERE / "RESULTS.md"
POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432"
TARGET_MS = 50.0
FULL = dict(messages=1_000_000, conversations=10_000, users=1_000, member_of=1_000)
SMALL = dict(messages=20_000, conversations=200, users=100, member_of=20)

SEED = 17
HEAD = 4_000  # words of the Zipf vocabulary
ZIPF_S = 1.0
RARE_SHARE = 0.2  # messages with one rare word in them
RARE_MEAN = 5  # messages per rare word, on average
CHUNK = 50_000
SEARCHER = 1
META = "bench_search_meta"


def _words(text: str) -> list[str]:
    return text.split()


# The most common words of chat, roughly in order; the made-up words follow them.
COMMON = _words(
    "i you the to a it and is that me my in of for so this what just be have we not on do "
    "are no was but with can yes ok like all get if know now good will your at think go out "
    "up one there about time how see when then love got day back too want here really going "
    "they he she did him her our well right need them tomorrow tonight work home come "
    "sorry thanks great sure maybe still today night more some call let where why been make "
    "had would should could yeah lol haha nice fine over much very take feel first last new "
    "week next later after before thing things people way said say tell told"
)
ACCENTED = ["café", "naïve", "résumé", "jalapeño", "über", "déjà", "façade", "fiancée"]
ONSETS = _words("b c d f g h j k l m n p r s t v w z br ch cl cr dr fl gr pl pr sh sl st th tr")
VOWELS = _words("a e i o u ai ea ee oo ou")
CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"]


# ---------------------------------------------------------------------------------------------
# Where the data lives


def sizes(args) -> dict:
    base = SMALL if args.small else FULL
    return {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}


def tag(params: dict) -> str:
    return f"{params['messages']}m_{params['conversations']}c"


def database_url(kind: str, params: dict, args) -> str:
    if kind == "sqlite":
        return f"sqlite:///{WORK / ('search-' + tag(params) + '.sqlite3')}"
    return f"{args.postgresql.rstrip('/')}/chipper_bench_search_{tag(params)}"


def _admin_connection(url: str):
    """A psycopg connection to the server's `postgres` database, for CREATE/DROP DATABASE."""
    import psycopg
    import sqlalchemy as sa

    server = sa.engine.make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(server.render_as_string(hide_password=False), autocommit=True)


def drop_database(kind: str, url: str) -> None:
    import sqlalchemy as sa

    if kind == "sqlite":
        path = Path(sa.engine.make_url(url).database)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    name = sa.engine.make_url(url).database
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(kind: str, url: str) -> None:
    import sqlalchemy as sa

    drop_database(kind, url)
    if kind == "postgresql":
        with _admin_connection(url) as conn:
            conn.execute(f'CREATE DATABASE "{sa.engine.make_url(url).database}"')
    else:
        WORK.mkdir(parents=True, exist_ok=True)


def make_app(url: str):
    from chipper import create_app

    WORK.mkdir(parents=True, exist_ok=True)
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench-search",
            "REDIS_URL": "",
            "UPLOAD_FOLDER": str(WORK / "uploads"),
            "TESTING": False,
        }
    )


def read_meta(url: str) -> dict | None:
    """What the seeding left in the database (sizes, queries, counts), or None."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(f"SELECT value FROM {META} WHERE name = 'seed'")).first()
            return json.loads(row[0]) if row else None
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def schema_matches(url: str) -> bool:
    """Whether the database has every column the models have now (the app may have gained
    one since the seeding)."""
    import sqlalchemy as sa

    from chipper.extensions import db

    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        for table in db.metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            if not {c.name for c in table.columns} <= have:
                return False
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def needs_seed(kind: str, url: str, params: dict) -> str | None:
    """Why the database must be seeded first, or None."""
    if kind == "sqlite" and not Path(url.removeprefix("sqlite:///")).exists():
        return "no database yet"
    meta = read_meta(url)
    if meta is None:
        return "no seeded data"
    if meta["params"] != params:
        return f"seeded with other sizes ({meta['params']})"
    make_app(url)  # imports the models
    if not schema_matches(url):
        return "the models have columns the database has not"
    return None


# ---------------------------------------------------------------------------------------------
# The data


class Data:
    """Users, conversations, members and message texts, the same for every run (seeded)."""

    def __init__(self, params: dict):
        self.params = params
        rng = self.rng = random.Random(SEED)
        n_users, n_convs, n_msgs = params["users"], params["conversations"], params["messages"]
        taken = set(COMMON) | set(ACCENTED)
        made_up = self._made_up(HEAD - len(COMMON) - len(ACCENTED), (1, 2, 2, 3), taken)
        made_up[200:200] = ACCENTED  # accents, folded when indexed, among the middling words
        self.head = COMMON + made_up
        self.cum = []
        total = 0.0
        for rank in range(1, len(self.head) + 1):
            total += 1 / rank**ZIPF_S
            self.cum.append(total)
        self.rare = self._made_up(max(1, int(n_msgs * RARE_SHARE / RARE_MEAN)), (3, 4), taken)
        self.rare_count = [0] * len(self.rare)
        self.rare_mine = [0] * len(self.rare)  # of them, in the searcher's conversations
        self.start = datetime(2026, 1, 1)
        self.step = timedelta(days=365) / n_msgs

        # Conversations: three in five private (two people), the rest groups of 3 to 12.
        # The searcher is in `member_of` of them, chosen at random.
        mine = set(rng.sample(range(1, n_convs + 1), params["member_of"]))
        others = range(SEARCHER + 1, n_users + 1)
        self.members: dict[int, list[int]] = {}
        self.kinds: dict[int, str] = {}
        pairs = set()
        for cid in range(1, n_convs + 1):
            private = rng.random() < 0.6
            size = 2 if private else rng.randint(3, min(12, n_users))
            while True:
                people = [SEARCHER] if cid in mine else []
                people += rng.sample(others, size - len(people))
                key = tuple(sorted(people))
                if not private or key not in pairs:
                    break
            if private:
                pairs.add(key)
            self.members[cid] = people
            self.kinds[cid] = "private" if private else "group"
        self.mine = sorted(mine)
        self.searcher_in = mine
        # Some conversations are much busier than others.
        weights = [rng.lognormvariate(0, 1) for _ in range(n_convs)]
        self.conversation_of = rng.choices(range(1, n_convs + 1), weights=weights, k=n_msgs)
        self.last = {}
        for i, cid in enumerate(self.conversation_of):
            self.last[cid] = i

    def _made_up(self, count: int, syllables: tuple, taken: set) -> list[str]:
        rng, out = self.rng, []
        while len(out) < count:
            n = rng.choice(syllables)
            word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(n))
            word += rng.choice(CODAS)
            if word not in taken:
                taken.add(word)
                out.append(word)
        return out

    def at(self, i: int) -> datetime:
        return self.start + self.step * i

    def users(self) -> list[tuple]:
        pw = "!"  # matches no password: nobody signs in here
        names = {SEARCHER: "Searcher"}
        return [
            (u, names.get(u, f"User {u}"), f"u{u}@bench.test", pw, u == 1, self.start, self.start)
            for u in range(1, self.params["users"] + 1)
        ]

    def conversations(self) -> list[tuple]:
        rows = []
        for cid, people in self.members.items():
            private = self.kinds[cid] == "private"
            touched = self.at(self.last[cid]) if cid in self.last else self.start
            rows.append(
                (
                    cid,
                    self.kinds[cid],
                    None if private else f"Group {cid}",
                    people[0],
                    ":".join(map(str, sorted(people))) if private else None,
                    self.start - timedelta(days=cid % 30),
                    touched,
                )
            )
        return rows

    def participants(self) -> list[tuple]:
        rows, pid = [], 0
        for cid, people in self.members.items():
            for uid in people:
                pid += 1
                rows.append((pid, cid, uid, False, self.start, self.start))
        return rows

    def text(self, cid: int) -> str:
        rng = self.rng
        n = max(1, min(40, int(rng.lognormvariate(1.9, 0.7))))
        words = rng.choices(self.head, cum_weights=self.cum, k=n)
        if rng.random() < RARE_SHARE:
            r = rng.randrange(len(self.rare))
            self.rare_count[r] += 1
            self.rare_mine[r] += cid in self.searcher_in
            words.insert(rng.randrange(n + 1), self.rare[r])
        text = " ".join("I" if w == "i" else w for w in words)
        return text[0].upper() + text[1:] + rng.choice(("", "", "", ".", "?", "!"))

    def messages(self):
        """Chunks of (message row, index row): ids in time order, an author among the
        conversation's members, the document as services/search.index makes it."""
        from chipper import formatting, search_query

        rng = self.rng
        for begin in range(0, self.params["messages"], CHUNK):
            rows, documents = [], []
            for i in range(begin, min(begin + CHUNK, self.params["messages"])):
                cid = self.conversation_of[i]
                body = self.text(cid)
                at = self.at(i)
                rows.append((i + 1, cid, rng.choice(self.members[cid]), body, "text", at, at))
                document = search_query.document(formatting.plain_text(body), None)
                if document:
                    documents.append((i + 1, document))
            yield rows, documents

    def queries(self) -> dict[str, dict]:
        """What each case searches for: a pool of queries taken in turn."""
        rng = random.Random(SEED + 1)
        # Words the searcher can find: people search for what they remember seeing.
        rare = [
            w
            for w, c, mine in zip(self.rare, self.rare_count, self.rare_mine, strict=True)
            if 3 <= c <= 10 and mine
        ]
        middling = self.head[100:1000]
        prefixes = sorted({w[:3] for w in middling if len(w) > 4 and w.isascii()})
        common = self.head[:20]
        return {
            "common word": {"texts": common, "about": "one of the 20 commonest words"},
            "middling word": {
                "texts": rng.sample(self.head[200:400], 50),
                "about": "words of rank 200 to 400",
            },
            "rare word": {
                "texts": rng.sample(rare, min(200, len(rare))),
                "about": "words in 3 to 10 messages, at least one of them the searcher's",
            },
            "two words": {
                "texts": [" ".join(rng.sample(self.head[10:100], 2)) for _ in range(50)],
                "about": "two words of rank 10 to 100, both required",
            },
            "prefix": {
                "texts": rng.sample(prefixes, min(50, len(prefixes))),
                "about": "3 letters of a word of rank 100 to 1,000",
            },
            "common word, one conversation": {
                "texts": common,
                "conversations": [rng.choice(self.mine) for _ in common],
                "about": "a common word within one of the searcher's conversations",
            },
        }


# ---------------------------------------------------------------------------------------------
# Seeding


USER_COLUMNS = "id, name, email, password, is_admin, created_at, updated_at"
CONVERSATION_COLUMNS = "id, type, name, created_by, private_key, created_at, updated_at"
PARTICIPANT_COLUMNS = "id, conversation_id, user_id, muted, created_at, updated_at"
MESSAGE_COLUMNS = "id, conversation_id, user_id, body, type, created_at, updated_at"


def _sqlite_row(row: tuple) -> tuple:
    """Values as SQLAlchemy stores them on SQLite (its DATETIME format)."""
    return tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)


def seed(kind: str, url: str, params: dict) -> dict:
    from chipper.extensions import db

    t0 = time.perf_counter()
    steps = {}
    print(f"[{kind}] seeding {params} into {url}", flush=True)
    create_database(kind, url)
    app = make_app(url)
    with app.app_context():
        db.create_all()  # the message_search index table with them (services/search.SCHEMA)
        db.engine.dispose()
    data = Data(params)
    steps["schema and data plan"] = time.perf_counter() - t0
    tables = [
        ("users", USER_COLUMNS, data.users()),
        ("conversations", CONVERSATION_COLUMNS, data.conversations()),
        ("conversation_participants", PARTICIPANT_COLUMNS, data.participants()),
    ]
    if kind == "sqlite":
        _seed_sqlite(url, data, tables, steps)
    else:
        _seed_postgresql(url, data, tables, steps)
    seconds = time.perf_counter() - t0
    meta = {
        "params": params,
        "seeded_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seed_seconds": round(seconds, 1),
        "steps": {k: round(v, 1) for k, v in steps.items()},
        "searcher": SEARCHER,
        "searcher_conversations": len(data.mine),
        "head_words": len(data.head),
        "rare_words": len(data.rare),
        "cases": data.queries(),
    }
    t1 = time.perf_counter()
    _count_matches(url, meta)
    meta["steps"]["counting what the queries match"] = round(time.perf_counter() - t1, 1)
    _write_meta(url, meta)
    print(f"[{kind}] seeded in {seconds:.1f} s: {meta['steps']}", flush=True)
    return meta


def _seed_sqlite(url: str, data: Data, tables, steps: dict) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB, for the load only
    t = time.perf_counter()
    conn.execute("BEGIN")
    for table, columns, rows in tables:
        marks = ", ".join("?" * len(columns.split(",")))
        conn.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", map(_sqlite_row, rows)
        )
    conn.execute("COMMIT")
    steps["users, conversations, members"] = time.perf_counter() - t
    generating = messages = documents = 0.0
    t = time.perf_counter()
    for rows, docs in data.messages():
        generating += time.perf_counter() - t
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            map(_sqlite_row, rows),
        )
        t2 = time.perf_counter()
        # As services/search.index writes it: the message's id as the rowid, the document.
        conn.executemany("INSERT INTO message_search (rowid, document) VALUES (?, ?)", docs)
        conn.execute("COMMIT")
        messages += t2 - t
        documents += time.perf_counter() - t2
        print(f"  {rows[-1][0]:,} messages", end="\r", flush=True)
        t = time.perf_counter()
    print()
    steps["message texts and documents made"] = generating
    steps["messages"] = messages
    steps["search index rows"] = documents
    t = time.perf_counter()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    steps["checkpoint"] = time.perf_counter() - t


def _seed_postgresql(url: str, data: Data, tables, steps: dict) -> None:
    import psycopg
    import sqlalchemy as sa

    from chipper.services import search

    dsn = sa.engine.make_url(url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as conn:
        # Rows that are right by construction: no foreign-key triggers during the load.
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '1GB'")
        t = time.perf_counter()
        with conn.transaction():
            for table, columns, rows in tables:
                with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        steps["users, conversations, members"] = time.perf_counter() - t
        # The GIN index is built once at the end (services/search.SCHEMA's own statement),
        # the documents staged as text and turned into tsvectors by the server, as index() does.
        conn.execute(f"DROP INDEX IF EXISTS ix_{search.TABLE}_document")
        conn.execute("CREATE UNLOGGED TABLE bench_documents (id integer, text text)")
        generating = messages = documents = 0.0
        t = time.perf_counter()
        for rows, docs in data.messages():
            generating += time.perf_counter() - t
            t = time.perf_counter()
            with conn.transaction():
                with conn.cursor().copy(f"COPY messages ({MESSAGE_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                t2 = time.perf_counter()
                with conn.cursor().copy("COPY bench_documents (id, text) FROM STDIN") as copy:
                    for row in docs:
                        copy.write_row(row)
            messages += t2 - t
            documents += time.perf_counter() - t2
            print(f"  {rows[-1][0]:,} messages", end="\r", flush=True)
            t = time.perf_counter()
        print()
        steps["message texts and documents made"] = generating
        steps["messages"] = messages
        t = time.perf_counter()
        conn.execute(
            f"INSERT INTO {search.TABLE} (message_id, document) "
            "SELECT id, to_tsvector('simple', text) FROM bench_documents"
        )
        conn.execute("DROP TABLE bench_documents")
        steps["search index rows"] = documents + time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(search.SCHEMA["postgresql"][1])
        steps["GIN index"] = time.perf_counter() - t
        for table in ("users", "conversations", "conversation_participants", "messages"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        steps["VACUUM ANALYZE"] = time.perf_counter() - t


def _count_sql(dialect: str, mine: bool, conversation: bool = False) -> str:
    """count(*) of the messages a query matches: all of them, or the searcher's only."""
    from chipper.services.search import TABLE

    if dialect == "postgresql":
        sql = f"SELECT count(*) FROM {TABLE} s JOIN messages m ON m.id = s.message_id"
        match = "s.document @@ to_tsquery('simple', :q)"
    else:
        sql = f"SELECT count(*) FROM {TABLE} s JOIN messages m ON m.id = s.rowid"
        match = f"{TABLE} MATCH :q"
    if mine:
        sql += (
            " JOIN conversation_participants p ON p.conversation_id = m.conversation_id"
            " AND p.user_id = :uid"
        )
    sql += " WHERE " + match
    if conversation:
        sql += " AND m.conversation_id = :cid"
    return sql


def _count_matches(url: str, meta: dict) -> None:
    """How many messages each query matches, all of them and the searcher's only."""
    import sqlalchemy as sa

    from chipper import search_query

    engine = sa.create_engine(url)
    dialect = engine.dialect.name
    build = search_query.tsquery if dialect == "postgresql" else search_query.fts5
    with engine.connect() as conn:
        meta["messages"] = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar()
        meta["searcher_messages"] = conn.execute(
            sa.text(
                "SELECT count(*) FROM messages m JOIN conversation_participants p "
                "ON p.conversation_id = m.conversation_id AND p.user_id = :uid"
            ),
            {"uid": SEARCHER},
        ).scalar()
        for case in meta["cases"].values():
            case["matches"], case["visible"] = [], []
            cids = case.get("conversations")
            for i, text in enumerate(case["texts"]):
                params = {"q": build(search_query.parse(text)), "uid": SEARCHER}
                if cids:
                    params["cid"] = cids[i]
                within = bool(cids)
                for key, mine in (("matches", False), ("visible", True)):
                    sql = _count_sql(dialect, mine, within)
                    case[key].append(conn.execute(sa.text(sql), params).scalar())
    engine.dispose()


def _write_meta(url: str, meta: dict) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY, value TEXT)")
        )
        conn.execute(sa.text(f"DELETE FROM {META}"))
        conn.execute(
            sa.text(f"INSERT INTO {META} (name, value) VALUES ('seed', :v)"),
            {"v": json.dumps(meta)},
        )
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# Measuring


def _proc_stat() -> tuple[int, int]:
    """(busy ticks of all cores, ticks stolen by the hypervisor)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4], v[7]


def _own_ticks() -> int:
    t = os.times()
    return round((t.user + t.system) * CLK_TCK)


def _postgres_ticks() -> int:
    """CPU of PostgreSQL's processes, with that of the ones that ended (parallel workers
    live for one query): their time goes to the postmaster's children's time."""
    total = 0
    for pid in postgres_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError):
            pass
    return total


class Window:
    """CPU in % of one core over a stretch of time: stolen by the hypervisor, used by this
    process, by PostgreSQL's processes, and by the rest of the machine."""

    def __init__(self):
        self.t = time.monotonic()
        self.busy, self.steal = _proc_stat()
        self.own, self.postgres = _own_ticks(), _postgres_ticks()

    def close(self) -> dict:
        seconds = time.monotonic() - self.t
        busy, steal = _proc_stat()
        own, postgres = _own_ticks() - self.own, _postgres_ticks() - self.postgres

        def pct(ticks):
            return round(100.0 * ticks / CLK_TCK / seconds, 1)

        return {
            "seconds": round(seconds, 1),
            "stolen %": pct(steal - self.steal),
            "this process %": pct(own),
            "postgresql %": pct(postgres),
            "rest of the machine %": pct(max(0, busy - self.busy - own - postgres)),
        }


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    at = q * (len(values) - 1)
    low = int(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


def measure(kind: str, url: str, args) -> dict:
    import sqlalchemy as sa

    from chipper.extensions import db
    from chipper.models import User
    from chipper.services.search import search

    meta = read_meta(url)
    app = make_app(url)
    out = {
        "db": kind,
        "params": meta["params"],
        "machine": machine(),
        "command": " ".join(["bench/search.py", *sys.argv[1:]]),
        "seeded_at": meta["seeded_at"],
        "seed_seconds": meta["seed_seconds"],
        "seed_steps": meta["steps"],
        "data": {
            k: meta[k]
            for k in (
                "messages",
                "searcher_messages",
                "searcher_conversations",
                "head_words",
                "rare_words",
            )
        },
        "cases": {},
    }
    with app.app_context():
        engine = db.engine
        out["server"] = (
            db.session.execute(sa.text("SELECT sqlite_version()")).scalar()
            if kind == "sqlite"
            else db.session.execute(sa.text("SHOW server_version")).scalar()
        )
        clock = {"ranked": 0, "statement": None}

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _before(conn, cursor, statement, parameters, context, executemany):
            conn.info["bench_t"] = time.perf_counter_ns()

        @sa.event.listens_for(engine, "after_cursor_execute")
        def _after(conn, cursor, statement, parameters, context, executemany):
            if statement.startswith("WITH hits"):
                clock["ranked"] += time.perf_counter_ns() - conn.info["bench_t"]
                clock["statement"] = (statement, parameters)

        user = db.session.get(User, meta["searcher"])
        db.session.expunge(user)
        db.session.remove()

        def one(text: str, cid: int | None) -> tuple[float, float, int]:
            clock["ranked"] = 0
            t = time.perf_counter_ns()
            results = search(user, text, conversation_id=cid)
            elapsed = time.perf_counter_ns() - t
            hits = len(results.hits)
            db.session.remove()  # as a request's teardown does; the connection stays pooled
            return elapsed / 1e6, clock["ranked"] / 1e6, hits

        cases = meta["cases"]
        if args.cases:
            cases = {k: v for k, v in cases.items() if k in args.cases}
        print(f"[{kind}] warming up: every query once", flush=True)
        for case in cases.values():
            for i, text in enumerate(case["texts"]):
                one(text, (case.get("conversations") or [None] * (i + 1))[i])
        speed_before = python_speed()
        window = Window()
        plans = {}
        for name, case in cases.items():
            texts, cids = case["texts"], case.get("conversations")
            times, ranked, hits = [], [], []
            started = time.monotonic()
            case_window = Window()
            for k in range(args.queries):
                i = k % len(texts)
                total, sql, n = one(texts[i], cids[i] if cids else None)
                times.append(total)
                ranked.append(sql)
                hits.append(n)
                if time.monotonic() - started > args.max_seconds:
                    break
            cpu = case_window.close()
            out["cases"][name] = {
                "about": case["about"],
                "queries": len(times),
                "median_ms": round(statistics.median(times), 2),
                "p99_ms": round(_quantile(times, 0.99), 2),
                "max_ms": round(max(times), 2),
                "ranked_sql_share": round(sum(ranked) / sum(times), 3),
                "hits_mean": round(statistics.mean(hits), 1),
                "matches": [min(case["matches"]), int(statistics.median(case["matches"]))],
                "matches_max": max(case["matches"]),
                "visible": [min(case["visible"]), int(statistics.median(case["visible"]))],
                "visible_max": max(case["visible"]),
                "cpu": cpu,
            }
            r = out["cases"][name]
            print(
                f"[{kind}] {name:30} n={r['queries']:4} median {r['median_ms']:8.2f} ms  "
                f"p99 {r['p99_ms']:8.2f} ms  max {r['max_ms']:8.2f} ms  "
                f"ranked SQL {100 * r['ranked_sql_share']:.0f} %  "
                f"stolen {cpu['stolen %']} %  rest {cpu['rest of the machine %']} %",
                flush=True,
            )
            if name in ("common word", "rare word"):
                # The plan of the ranked statement for the heaviest query of the case.
                heaviest = max(range(len(texts)), key=lambda j: case["matches"][j])
                one(texts[heaviest], cids[heaviest] if cids else None)
                plans[name] = (texts[heaviest], _plan(kind, *clock["statement"]))
        out["cpu"] = window.close()
        out["python speed s"] = [round(speed_before, 2), round(python_speed(), 2)]
        out["plans"] = plans
        db.session.remove()
        engine.dispose()
    return out


def _plan(kind: str, statement: str, parameters) -> str:
    from chipper.extensions import db

    conn = db.session.connection()
    if kind == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        depth, lines = {0: -1}, []
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
        text = "\n".join(lines)
    else:
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
        text = "\n".join(r[0] for r in rows)
    db.session.remove()
    return text


# ---------------------------------------------------------------------------------------------
# Reporting


def _n(x) -> str:
    return f"{x:,}"


def _ms(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"


def report(results: dict[str, dict]) -> str:
    """The Markdown of the `search` section, from the latest results of each database."""
    first = next(iter(results.values()))
    p, d = first["params"], first["data"]
    cases = {}  # every case measured, with what it matches (the same data on both)
    for r in results.values():
        for name, c in r["cases"].items():
            cases.setdefault(name, c)
    kinds = [k for k in ("sqlite", "postgresql") if k in results]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    lines = []
    for kind in kinds:
        r = results[kind]
        seeding = dict(r["seed_steps"])
        counting = seeding.pop("counting what the queries match", 0)
        steps = ", ".join(f"{k} {v:,.1f} s" for k, v in seeding.items())
        lines.append(
            f"{label[kind]} {r['server']}: {r['machine']}.  \n"
            f"Command: `cd /work/main && .venv/bin/python {r['command']}`  \n"
            f"Seeded {r['seeded_at']} in **{r['seed_seconds']:,.0f} s** ({steps}), then "
            f"{counting:,.0f} s counting what each query matches (for the table).  "
        )
    lines.append("")
    lines.append(
        f"Data: {_n(d['messages'])} messages in {_n(p['conversations'])} conversations among "
        f"{_n(p['users'])} users; the searcher is in {_n(d['searcher_conversations'])} "
        f"conversations with {_n(d['searcher_messages'])} messages "
        f"({100 * d['searcher_messages'] / d['messages']:.1f} %). Words: Zipf (s = {ZIPF_S}) over "
        f"{_n(d['head_words'])} words, and one of {_n(d['rare_words'])} rare words in one "
        f"message in {round(1 / RARE_SHARE)}. Each query is the app's `search()` (ranked SQL, "
        "loading the 20 hits, snippets) on a warm connection; every query was run once first."
    )
    lines.append("")
    head = "| case | messages it matches: all / the searcher's (min-median-max) |"
    rule = "|---|---|"
    for kind in kinds:
        head += f" {label[kind]} median / p99 ms | ranked SQL share |"
        rule += "---|---|"
    lines += [head, rule]
    for name, c in cases.items():
        all_, mine = c["matches"], c["visible"]
        row = (
            f"| {name} ({c['about']}) | {_n(all_[0])}-{_n(all_[1])}-{_n(c['matches_max'])} / "
            f"{_n(mine[0])}-{_n(mine[1])}-{_n(c['visible_max'])} |"
        )
        for kind in kinds:
            k = results[kind]["cases"].get(name)
            if k is None:
                row += " - | - |"
                continue
            met = k["p99_ms"] < TARGET_MS
            p99 = _ms(k["p99_ms"]) if met else f"**{_ms(k['p99_ms'])}**"
            few = "" if k["queries"] >= 100 else f" ({k['queries']} queries)"
            row += f" {_ms(k['median_ms'])} / {p99}{few} | {100 * k['ranked_sql_share']:.0f} % |"
        lines.append(row)
    lines.append("")
    for kind in kinds:
        r = results[kind]
        cpu = r["cpu"]
        missed = [n for n, c in r["cases"].items() if c["p99_ms"] >= TARGET_MS]
        queries = sum(c["queries"] for c in r["cases"].values())
        lines.append(
            f"{label[kind]}: p99 < {TARGET_MS:.0f} ms "
            + (f"**missed** for {'; '.join(missed)}" if missed else "met in every case")
            + f". {_n(queries)} timed queries over {cpu['seconds']:,.0f} s; stolen by the "
            f"hypervisor {cpu['stolen %']} % of a core; this process used "
            f"{cpu['this process %']} %, PostgreSQL {cpu['postgresql %']} % and the rest of "
            f"the machine {cpu['rest of the machine %']} %; "
            f"10 million additions took {r['python speed s'][0]} / {r['python speed s'][1]} s "
            "before / after."
        )
        lines.append("")
    for kind in kinds:
        for case, (text, plan) in results[kind]["plans"].items():
            if case != "common word":  # the rare word's plans are printed, not kept here
                continue
            how = "EXPLAIN QUERY PLAN" if kind == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS)"
            lines.append(f"{label[kind]}, {how} of the ranked statement, {case} `{text}`:")
            lines.append("")
            lines.append("```")
            lines.append(plan)
            lines.append("```")
            lines.append("")
    return "\n".join(lines)


def write_results(text: str) -> None:
    start, end = "<!-- bench:search -->", "<!-- /bench:search -->"
    block = f"{start}\n{text.strip()}\n{end}"
    current = RESULTS.read_text() if RESULTS.exists() else ""
    if start in current and end in current:
        before, rest = current.split(start, 1)
        _, after = rest.split(end, 1)
        current = before + block + after
    else:
        current = current.rstrip("\n") + "\n\n## Search (issue 17)\n\n" + block + "\n"
    RESULTS.write_text(current)


def results_file(kind: str, params: dict) -> Path:
    return WORK / f"results-{kind}-{tag(params)}.json"


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "command",
        choices=("run", "seed", "report", "drop"),
        help="report: the table again from the latest saved results (with --write: to RESULTS.md)",
    )
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--small", action="store_true", help="20,000 messages, for a quick check")
    p.add_argument("--messages", type=int)
    p.add_argument("--conversations", type=int)
    p.add_argument("--users", type=int)
    p.add_argument("--member-of", type=int, help="conversations the searcher is in")
    p.add_argument("--queries", type=int, default=200, help="timed queries per case")
    p.add_argument(
        "--max-seconds", type=float, default=120, help="stop a case's timing after this long"
    )
    p.add_argument("--cases", nargs="*", help="only these cases (names as reported)")
    p.add_argument("--postgresql", default=POSTGRESQL, help="the server (no database)")
    p.add_argument("--write", action="store_true", help="rewrite bench/RESULTS.md's section")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    params = sizes(args)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds if args.command != "report" else []:
        url = database_url(kind, params, args)
        if args.command == "drop":
            drop_database(kind, url)
            results_file(kind, params).unlink(missing_ok=True)
            print(f"[{kind}] dropped {url}")
            continue
        if args.command == "seed":
            seed(kind, url, params)
            continue
        if reason := needs_seed(kind, url, params):
            print(f"[{kind}] seeding first: {reason}", flush=True)
            seed(kind, url, params)
        result = measure(kind, url, args)
        results_file(kind, params).write_text(json.dumps(result, indent=1))
    if args.command not in ("run", "report"):
        return
    results = {}
    for kind in ("sqlite", "postgresql"):
        path = results_file(kind, params)
        if path.exists():
            results[kind] = json.loads(path.read_text())
    text = report(results)
    print()
    print(text)
    if args.write:
        write_results(text)
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
