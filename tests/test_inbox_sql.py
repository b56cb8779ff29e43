"""The inbox's statements (runtime ``_inbox_sql.py``): written once per database, each in
its driver's own parameter style, never rewritten; every column named once."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

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



def test_a_sqlite_claim_reads_the_due_index_and_sorts_nothing(tmp_path: Path) -> None:
    """A claim that read every row of its state and sorted them slowed as the backlog grew
    (after an outage, when draining matters): its plan is checked, not timed."""
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    params = {"owner": "w", "token": "t", "expires": 1.0, "now": 0.0, "limit": 50}
    with inbox.transaction() as db:
        plan = " | ".join(str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + inbox.SQL.claim, params))
    assert "USING INDEX webhook_inbox_due" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
