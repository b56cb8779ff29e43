"""The inbox's statements (runtime ``_inbox_sql.py``): written once per database, each in
its driver's own parameter style, never rewritten; every column named once."""

from __future__ import annotations

import dataclasses
import re

import pytest
from incident_webhooks import _inbox_sql
from incident_webhooks.inbox import COLUMNS, PostgresInbox, Row, SQLiteInbox

STYLES = {"sqlite": re.compile(r":[a-z_]+\b"), "postgres": re.compile(r"%\([a-z_]+\)s")}


@pytest.mark.parametrize("inbox", [SQLiteInbox, PostgresInbox], ids=["sqlite", "postgres"])
def test_every_statement_uses_its_own_drivers_named_parameters_only(inbox: type) -> None:
    dialect = inbox.DIALECT.name
    other = STYLES["postgres" if dialect == "sqlite" else "sqlite"]
    for field in dataclasses.fields(inbox.SQL):
        statement: str = getattr(inbox.SQL, field.name)
        assert "?" not in statement, (field.name, statement)
        assert not other.search(statement.replace("::", "")), (field.name, statement)


def test_the_columns_are_rows_fields_and_every_stored_column_is_one() -> None:
    assert COLUMNS == tuple(f.name for f in dataclasses.fields(Row))
    assert set(_inbox_sql.STORED) <= set(COLUMNS)

