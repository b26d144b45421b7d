"""The interleaving table: golden output on fixed traces, folding, --full and width fitting.

The traces are built by hand, not run, so the output is the same on every
Python version and machine.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from interlace.lowlevel import Decision, Token, Trace
from interlace.report.table import hidden_rows, interleaving_table

Row = tuple[str, str] | tuple[str, str, bool]


def _trace(rows: list[Row], **metadata: object) -> Trace:
    """A trace of ``(task, label[, preemption])`` rows; tasks are indexed as they appear."""
    order: dict[str, int] = {}
    decisions = []
    for step, row in enumerate(rows):
        task, label = row[0], row[1]
        order.setdefault(task, len(order))
        decisions.append(
            Decision(
                step=step,
                task=task,
                task_index=order[task],
                label=label,
                runnable=tuple(order),
                preemption=len(row) > 2 and bool(row[2]),  # type: ignore[misc]
            )
        )
    return Trace(tuple(decisions), **metadata)  # type: ignore[arg-type]


TWO_TRANSFERS: list[Row] = [
    ("main", "start two_transfers"),
    ("main", "SELECT accounts"),
    ("T1", "start WebProcess.post"),
    ("T2", "start WebProcess.post", True),
    ("T1", "SELECT accounts"),
    ("T2", "SELECT accounts"),
    ("T1.1", "timer in FakeProvider.stream_reply"),
    ("T3", "start AsyncConnection.close"),
    ("T3", "ROLLBACK"),
    ("T2", "UPDATE accounts", True),
    ("T1", "UPDATE accounts"),
    ("main", "joined T1, T2"),
    ("main", "SELECT accounts"),
    ("T4", "start AsyncSession.close"),
    ("T4", "ROLLBACK"),
    ("main", "joined T4"),
]
DISPLAY: Mapping[str, str] = {
    "T1": "web-1 POST /transfer",
    "T1.1": "web-1 POST /transfer",
    "T2": "web-2 POST /transfer",
}
METADATA: dict[str, object] = {
    "display_names": DISPLAY,
    "internal_tasks": frozenset({"T3", "T4"}),
    "invariant_tasks": frozenset({"T4"}),
    "marks": {"invariants": 12},
}


def test_golden_folded_table_one_column_per_request() -> None:
    table = interleaving_table(_trace(TWO_TRANSFERS, **METADATA), width=100)
    assert table.splitlines() == [
        "step | main          | web-1 POST /transfer                 | web-2 POST /transfer",
        "     |               | T1, T1.1                             | T2",
        "-----+---------------+--------------------------------------+------------------------",
        "   2 |               | start WebProcess.post                |",
        "   3 |               |                                      | start WebProcess.post *",
        "   4 |               | SELECT accounts                      |",
        "   5 |               |                                      | SELECT accounts",
        "   6 |               | .1 timer in stream_reply             |",
        "   9 |               |                                      | UPDATE accounts *",
        "  10 |               | UPDATE accounts                      |",
        "  11 | joined T1, T2 |                                      |",
        "(16 decisions, 2 preemptions; * = preemption)",
        "(8 rows hidden: 2 setup, 2 framework-internal, 4 invariant checks; --full shows them)",
    ]


def test_golden_full_table_one_column_per_task() -> None:
    table = interleaving_table(_trace(TWO_TRANSFERS, **METADATA), full=True, width=200)
    lines = table.splitlines()
    assert lines[:3] == [
        "step | main                | web-1 POST /transfer  | web-2 POST /transfer    "
        "| web-1 POST /transfer               | T3                          | T4",
        "     |                     | T1                    | T2                      "
        "| T1.1                               |                             |",
        "-----+---------------------+-----------------------+-------------------------"
        "+------------------------------------+-----------------------------"
        "+-------------------------",
    ]
    assert [line.split("|")[0].strip() for line in lines[3:-1]] == [str(s) for s in range(16)]
    assert lines[3].rstrip(" |") == "   0 | start two_transfers"
    assert lines[10].rstrip(" |").endswith("| start AsyncConnection.close")
    assert lines[16].endswith("| start AsyncSession.close")
    assert lines[-1] == "(16 decisions, 2 preemptions; * = preemption)"  # nothing hidden


def test_the_hidden_rows_and_why() -> None:
    hidden = hidden_rows(_trace(TWO_TRANSFERS, **METADATA))
    assert hidden == {
        0: "setup",
        1: "setup",
        7: "framework-internal",
        8: "framework-internal",
        12: "invariant checks",
        13: "invariant checks",
        14: "invariant checks",
        15: "invariant checks",
    }


def test_the_hint_names_the_front_end_option() -> None:
    table = interleaving_table(_trace(TWO_TRANSFERS, **METADATA), full_hint="--interlace-full")
    assert table.endswith("; --interlace-full shows them)")


def test_the_table_fits_the_width_clipping_cells_and_keeping_steps() -> None:
    trace = _trace(TWO_TRANSFERS, **METADATA)
    for width in (60, 72, 80):
        lines = interleaving_table(trace, width=width).splitlines()
        table = [line for line in lines if not line.startswith("(")]
        assert max(map(len, table)) <= width, (width, lines)
        steps = [line.split("|")[0].strip() for line in table[3:]]
        assert steps == ["2", "3", "4", "5", "6", "9", "10", "11"]  # never clipped
        assert all("|" in line or set(line) <= set("-+") for line in table)  # nothing wraps
    narrow = interleaving_table(trace, width=60).splitlines()
    assert narrow[0] == "step | main          | web-1 POST /tr... | web-2 POST /tr..."
    # a long qualified name is shortened to its function before it is clipped;
    # the preemption mark survives
    assert narrow[4] == "   3 |               |                   | start post *"


def test_the_width_defaults_to_the_terminal_or_100_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = _trace(TWO_TRANSFERS, **METADATA)
    monkeypatch.setenv("COLUMNS", "64")
    assert max(map(len, interleaving_table(trace).splitlines()[:-2])) <= 64
    monkeypatch.delenv("COLUMNS")
    assert interleaving_table(trace) == interleaving_table(trace, width=100)


def test_without_metadata_the_header_is_one_line_of_structural_names() -> None:
    rows: list[Row] = [
        ("main", "start two_withdrawals"),
        ("T1", "start withdraw"),
        ("T2", "start withdraw", True),
        ("T2", "yield in withdraw"),
        ("T1", "yield in withdraw"),
        ("main", "joined T1, T2"),
    ]
    assert interleaving_table(_trace(rows), width=100).splitlines() == [
        "step | main          | T1                | T2",
        "-----+---------------+-------------------+------------------",
        "   1 |               | start withdraw    |",
        "   2 |               |                   | start withdraw *",
        "   3 |               |                   | yield in withdraw",
        "   4 |               | yield in withdraw |",
        "   5 | joined T1, T2 |                   |",
        "(6 decisions, 1 preemptions; * = preemption)",
        "(1 row hidden: 1 setup; --full shows them)",
    ]


def test_a_single_task_trace_folds_nothing() -> None:
    rows: list[Row] = [("main", "start alone"), ("main", "SELECT accounts"), ("main", "COMMIT")]
    table = interleaving_table(_trace(rows, marks={"invariants": 0}), width=100)
    assert "hidden" not in table  # folding everything would show nothing
    assert "   2 | COMMIT" in table


def test_display_metadata_is_not_part_of_the_token_nor_of_equality() -> None:
    plain = _trace(TWO_TRANSFERS)
    labelled = _trace(TWO_TRANSFERS, **METADATA)
    assert plain == labelled
    assert hash(plain) == hash(labelled)
    token = Token.from_trace("m:s", "random", 1, plain).encode()
    assert Token.from_trace("m:s", "random", 1, labelled).encode() == token
