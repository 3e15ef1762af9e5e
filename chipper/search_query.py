"""What a search box's text asks, in terms both databases answer the same way.

Written by hand: SQLite's FTS5 and PostgreSQL's text search each have a query language of
their own (and `websearch_to_tsquery` has no FTS5 twin), and what a person types must never
reach either as syntax. So the text is read here once, like a web search box reads it
("a phrase", -word, or), into words, and each database gets a query built from those words
only. Documents are split into words the same way (`document`), so both find the same
messages: lowercased, accents dropped ("cafe" finds "café"), and every word a prefix
("bisc" finds "biscuits"); a quoted phrase matches whole words in that order.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from markupsafe import Markup, escape

# Past this the rest of a query is ignored: enough for any search a person types.
MAX_QUERY = 200
MAX_WORDS = 12
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')


def fold(text: str) -> str:
    """Lowercase with accents dropped, for comparing words: "Café" -> "cafe"."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return kept.casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def document(*parts: str | None) -> str:
    """What is indexed for a message: its words, folded, separated by single spaces."""
    return " ".join(w for part in parts if part for w in words(part))


@dataclass(frozen=True)
class Term:
    """Words that must come in this order (one word: any word starting with it)."""

    words: tuple[str, ...]
    phrase: bool = False  # typed in quotes: whole words, no prefix


@dataclass
class Query:
    """All of `groups` (each: any of its terms), and none of `excluded`."""

    groups: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def terms(self) -> list[Term]:
        return [term for group in self.groups for term in group]


def parse(text: str) -> Query:
    """Reads a search box: words, "quoted phrases", -excluded, `or` between two choices.
    Anything else (stray quotes, stars, brackets, operators) is only punctuation."""
    query = Query()
    pending_or = after_choice = False
    count = 0
    for match in _TOKEN.finditer(text[:MAX_QUERY]):
        quoted, bare = match.group(1), match.group(2)
        if bare is not None and bare.lower() == "or":
            pending_or = after_choice  # between two choices; else left out
            continue
        negative = bare is not None and bare.startswith("-") and len(bare) > 1
        found = tuple(words(quoted if quoted is not None else bare.lstrip("-")))
        if not found or count + len(found) > MAX_WORDS:
            continue
        count += len(found)
        term = Term(found, phrase=quoted is not None or len(found) > 1)
        if negative:
            query.excluded.append(term)
        elif pending_or:
            query.groups[-1].append(term)
        else:
            query.groups.append([term])
        pending_or, after_choice = False, not negative
    return query


def fts5(query: Query) -> str:
    """The query in FTS5's language: each word quoted, so none of it is syntax."""

    def term(t: Term) -> str:
        text = '"' + " ".join(t.words) + '"'
        return text if t.phrase else text + "*"

    def group(g: list[Term]) -> str:
        return term(g[0]) if len(g) == 1 else "(" + " OR ".join(term(t) for t in g) + ")"

    text = " AND ".join(group(g) for g in query.groups)
    for t in query.excluded:
        text = f"({text}) NOT {term(t)}"
    return text


def tsquery(query: Query) -> str:
    """The query in PostgreSQL's to_tsquery language: each word quoted as a lexeme."""

    def term(t: Term) -> str:
        lexemes = [f"'{w}'" for w in t.words]
        if not t.phrase:
            lexemes[-1] += ":*"
        return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"

    def group(g: list[Term]) -> str:
        return term(g[0]) if len(g) == 1 else "(" + " | ".join(term(t) for t in g) + ")"

    text = " & ".join(group(g) for g in query.groups)
    for t in query.excluded:
        text += f" & !{term(t)}"
    return text


SNIPPET = 160  # characters of text around the first hit


def snippet(text: str, query: Query) -> Markup:
    """A short piece of `text` around its first hit, escaped, with the words that match
    marked: <mark> is the only markup in it."""
    prefixes = {t.words[-1] for t in query.terms if not t.phrase}
    whole = {w for t in query.terms for w in t.words} - prefixes

    def hit(word: str) -> bool:
        folded = fold(word)
        return folded in whole or any(folded.startswith(p) for p in prefixes)

    spans = [m.span() for m in _WORD.finditer(text) if hit(m.group())]
    text_start = 0
    if spans and spans[0][0] > SNIPPET // 3:
        # Start at a word a little before the first hit.
        text_start = text.rfind(" ", 0, spans[0][0] - SNIPPET // 4) + 1
    end = min(len(text), text_start + SNIPPET)
    if end < len(text):
        end = max(text.rfind(" ", text_start, end), spans[0][1] if spans else 0) or end
    out = ["…"] if text_start > 0 else []
    at = text_start
    for start, stop in spans:
        if start < at or stop > end:
            continue
        out.append(escape(text[at:start]))
        out.append(Markup("<mark>%s</mark>") % text[start:stop])
        at = stop
    out.append(escape(text[at:end]))
    if end < len(text):
        out.append("…")
    return Markup("").join(out)
