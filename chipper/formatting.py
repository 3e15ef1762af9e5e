"""How a message's text is shown: a little Markdown (bold, italics, strikethrough, inline code,
code blocks, block quotes, lists, line breaks), bare addresses as links, and mentions.

The stored body stays the text as typed; every view renders it here: the page, the htmx
fragment and the live partial through the `formatted` filter, push notifications and the
conversation list through `plain_text`. The parsing is markdown-it-py's (CommonMark) with
raw HTML off, so what anyone types is text unless it is one of these few marks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

# Links open only these schemes: never javascript:, data: or a path on this server.
SAFE_SCHEMES = ("http:", "https:", "mailto:")
LINK_REL = "noopener nofollow ugc"
# The longest display name a mention can be (users.name is 255; mentions of more are rare).
MAX_NAME = 80
# Text with none of these is shown as it is (most messages): no parser needed.
_MARKS = re.compile(
    r"[*_`~>\[\]<\\\n\t&@]|^ {4}|^\s*(?:[-+]|\d+[.)])(?:\s|$)|://|www\.|\.[a-z]{2,}\b", re.M | re.I
)


@dataclass(frozen=True)
class Shown:
    """A message's text as HTML; `inline` when it is one paragraph (a <p> can hold it)."""

    html: Markup
    inline: bool


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(SAFE_SCHEMES)


def _name_at(text: str, at: int, names: Mapping[str, int]) -> str | None:
    """The longest of `names` (lowercased) written right after the "@" at `at`, ending
    where a word ends; None when none is, or when the "@" is inside a word (an address)."""
    if at > 0 and (text[at - 1].isalnum() or text[at - 1] in "@._-"):
        return None
    rest = text[at + 1 : at + 1 + MAX_NAME].lower()
    for name in sorted(names, key=len, reverse=True):
        end = len(name)
        if rest.startswith(name) and (end == len(rest) or not rest[end].isalnum()):
            return name
    return None


def names_of(people: Mapping[int, str]) -> dict[str, int]:
    """What "@" may be followed by to name each of `people` (id -> display name): the whole
    name, and its first word when no one else among them has that first word too
    ("@Ada" for Ada Lovelace), lowercased, to their ids."""
    names = {name.lower(): user_id for user_id, name in people.items() if name}
    firsts: dict[str, list[int]] = {}
    for user_id, name in people.items():
        if name and " " in name.strip():
            firsts.setdefault(name.split()[0].lower(), []).append(user_id)
    for first, ids in firsts.items():
        if len(ids) == 1:
            names.setdefault(first, ids[0])
    return names


def find_mentions(body: str, people: Mapping[str, int]) -> dict[int, str]:
    """The ids of the `people` (lowercased name -> id) the text names as @Name, in order,
    once each, with the name it first names them by (kept, so the mention still shows after a
    rename). A name inside code (`@Ann`) is still a mention: the writer typed it."""
    found: dict[int, str] = {}
    for match in re.finditer("@", body):
        name = _name_at(body, match.start(), people)
        if name is not None:
            found.setdefault(people[name], name)
    return found


def _mention_rule(state, silent: bool) -> bool:
    """`@Name` of someone the message mentions (env["mentions"]: lowercased name -> user id),
    as a mention token; the longest name that fits wins ("@Ann Lee" over "@Ann")."""
    if state.src[state.pos] != "@":
        return False
    names: Mapping[str, int] = state.env.get("mentions") or {}
    name = _name_at(state.src, state.pos, names) if names else None
    if name is None:
        return False
    if not silent:
        token = state.push("mention", "", 0)
        token.content = state.src[state.pos : state.pos + 1 + len(name)]
        token.meta = {"user_id": names[name]}
    state.pos += 1 + len(name)
    return True


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    md.enable(["linkify", "strikethrough"])
    # A chat line starting with "#" or "---" is not a heading or a rule; pictures come as
    # attachments, not from links to elsewhere; no reference definitions.
    md.disable(["heading", "lheading", "image", "hr", "reference", "html_block", "html_inline"])
    md.linkify.set({"fuzzy_email": False})
    md.validateLink = _safe_link
    md.inline.ruler.before("link", "mention", _mention_rule)

    def link_open(renderer, tokens, idx, options, env):
        tokens[idx].attrSet("rel", LINK_REL)
        tokens[idx].attrSet("target", "_blank")
        return renderer.renderToken(tokens, idx, options, env)

    def mention(renderer, tokens, idx, options, env):
        token = tokens[idx]
        user_id = int(token.meta["user_id"])
        # The reader's own name stands out (the page's script marks it on live messages).
        you = " you" if user_id == env.get("viewer") else ""
        return f'<span class="mention{you}" data-user-id="{user_id}">{escape(token.content)}</span>'

    md.add_render_rule("link_open", link_open)
    md.add_render_rule("mention", mention)
    return md


def render(
    body: str | None, mentions: Mapping[str, int] | None = None, viewer: int | None = None
) -> Shown:
    """The text as HTML to show. `mentions`: the names (lowercased) of the people it
    mentions, with their ids; `viewer`: who reads it, when the page is theirs alone."""
    body = body or ""
    if not _MARKS.search(body):
        return Shown(Markup(escape(body)), True)
    html = _parser().render(body, {"mentions": dict(mentions or {}), "viewer": viewer}).strip()
    # A line break is the <br> alone: the text's own newline after it would show twice in a
    # bubble that keeps white space.
    html = html.replace("<br />\n", "<br>")
    if html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1:
        return Shown(Markup(html[3:-4]), True)
    return Shown(Markup(html), False)


def plain_text(body: str | None) -> str:
    """The text without its marks, for a notification or the conversation list: what a
    reader sees, not the asterisks around it."""
    body = body or ""
    if not _MARKS.search(body):
        return body
    parts: list[str] = []
    for block in _parser().parse(body, {}):
        if block.type == "inline":
            for token in block.children or []:
                if token.type in ("softbreak", "hardbreak"):
                    parts.append("\n")
                elif token.type in ("text", "code_inline"):
                    parts.append(token.content)
        elif block.type in ("fence", "code_block"):
            parts.append(block.content)
        if block.type in ("paragraph_close", "list_item_close"):
            parts.append("\n")
    return re.sub(r"\n{2,}", "\n", "".join(parts)).strip()
