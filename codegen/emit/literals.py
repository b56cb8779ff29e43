"""Spec text goes into generated code only through these functions, always as data.

A summary such as ``\"\"\"; import os`` must end up inside a string, never as a statement.
"""

from __future__ import annotations

import json

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def py_string(text: str) -> str:
    """A Python string literal that evaluates to ``text``."""
    return repr(text)


def _escape_char(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    if not char.isprintable() and char != " ":
        return f"\\U{code:08x}" if code > 0xFFFF else f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"
    return char


def _is_plain(text: str) -> bool:
    """Text that can stand in a docstring as written, and that black leaves as it is."""
    if not text or text[-1] in '"\\' or text[0].isspace():
        return False
    if any(line != line.rstrip() for line in text.split("\n")):
        return False
    return '"""' not in text and all(
        c == "\n" or (c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF) for c in text
    ) and "\\" not in text


def docstring(text: str, indent: int = 4) -> str:
    """A docstring literal for ``text``; ``inspect.getdoc`` gives ``text`` back."""
    if _is_plain(text):
        if "\n" not in text:
            return f'"""{text}"""'
        pad = " " * indent
        lines = [line and pad + line for line in text.split("\n")]
        return '"""' + "\n".join(lines).lstrip() + "\n" + pad + '"""'
    # Anything unusual is written escaped on one line: it reads worse, but it is exact.
    body = "".join(_escape_char(c) for c in text[:-1])
    # black pads a docstring whose last character is a quote or a backslash with a space;
    # a hex escape is neither, so the value stays exact.
    last = text[-1:]
    body += f"\\x{ord(last):02x}" if last in ('"', "\\") else _escape_char(last)
    return '"""' + body + '"""'


def comment(text: str) -> str:
    """Text that cannot end a ``#`` comment early."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def toml_string(text: str) -> str:
    """A TOML basic string that reads back as ``text`` (JSON's escapes are TOML's)."""
    return json.dumps(text)


def md_code(text: str) -> str:
    """Text for inside a Markdown code span in a table cell: no backtick, pipe or newline can
    end the span, the cell or the row."""
    return "".join("\\|" if c == "|" else "'" if c == "`" else " " if not c.isprintable() else c for c in text)
