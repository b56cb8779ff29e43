"""Database URLs and DSNs as they may be printed: without their passwords.

A PostgreSQL DSN comes in many spellings (a URL with the password in its user part or in
``?password=``, libpq's ``key=value`` pairs, quoted or not), and users get them wrong in
ways that break a URL parser: an unencoded ``#``, ``/``, ``@`` or space in the password. So
this module does not parse a DSN the way a library does; it finds every place a password
can stand in any of those spellings, and removes it. Error messages from the drivers echo
parts of a DSN they cannot parse, so :func:`scrub` also removes the password, and each
longer piece of it, from any text.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["dsn", "scrub"]

HIDDEN = "***"
# libpq's keys that hold a secret, wherever they stand (key=value or ?key=value).
_SECRET_KEYS = r"(?:ssl)?password"
# key=value (or ?key=value): the value quoted ('...' with \' escapes, up to the end if never
# closed) or bare. A bare value runs on over a space or an "&" unless a "key=" follows it:
# an unencoded "&" or space in a password is a mistake, and the drivers echo what follows.
_PAIR = re.compile(
    rf"(?i)(?<![\w])({_SECRET_KEYS}\s*=\s*)"
    r"('(?:[^'\\]|\\.)*'?|(?:[^\s&]|&(?![\w.]+=)|\s+(?![\w.]+\s*=))*)"
)
# Pieces shorter than this are not removed from messages on their own: they would mangle
# ordinary words, and reveal next to nothing.
MIN_PIECE = 3


def _hide(text: str) -> tuple[str, list[str]]:
    """``text`` with its passwords replaced, and the passwords."""
    found: list[str] = []

    def hidden(match: re.Match[str]) -> str:
        found.append(match.group(2))
        return match.group(1) + HIDDEN

    text = _PAIR.sub(hidden, text)
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest:
        # The user part ends at the last "@": a password may hold "@", "/", "#" or "?"
        # unencoded, which a URL parser would split on.
        userinfo, _, hosts = rest.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon:
            found.append(password)
            text = f"{scheme}{sep}{user}:{HIDDEN}@{hosts}"
    return text, found


def dsn(text: str) -> str:
    """``text`` (a URL or a libpq ``key=value`` DSN, well-formed or not) with every
    password replaced by ``***``; the rest (user, host, database) kept for the reader.
    """
    return _hide(text)[0]


def secrets_in(text: str) -> list[str]:
    """Every password ``text`` holds, as written and decoded, and each longer piece of it,
    longest first."""
    found = set(_hide(text)[1])
    for value in list(found):
        if value.startswith("'"):
            found.add(value.strip("'").replace("\\'", "'").replace("\\\\", "\\"))
    for value in list(found):
        found.add(urllib.parse.unquote(value))
        found.add(urllib.parse.unquote_plus(value))
    for value in list(found):
        found.update(re.split(r"[^A-Za-z0-9]+", value))
    return sorted((s for s in found if len(s) >= MIN_PIECE), key=len, reverse=True)


def scrub(message: object, source: str) -> str:
    """``message`` (an error's text) without any password that ``source`` (the DSN the
    error is about) holds, whole or in pieces."""
    text = str(message)
    for secret in secrets_in(source):
        text = text.replace(secret, HIDDEN)
    return dsn(text)
