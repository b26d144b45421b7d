"""'raised at' names the application's frame first, then the library frames below it."""

from __future__ import annotations

import json

import pytest
import sqlalchemy

import interlace.engine
from interlace.lowlevel import Decision, Trace
from interlace.outcome import Failure, Outcome
from interlace.report.failure import failure_report
from interlace.report.frames import first_application_frame, is_application_file, raised_at


def _load_settings(text: str) -> object:
    return json.loads(text)  # the application's line: the error is raised in the stdlib


def _connect(url: str) -> object:
    return sqlalchemy.create_engine(url)  # raised deep in SQLAlchemy (site-packages)


def _error(call: object, argument: str) -> BaseException:
    with pytest.raises(Exception) as caught:
        call(argument)  # type: ignore[operator]
    return caught.value


def test_the_first_application_frame_is_the_innermost_outside_libraries() -> None:
    frame = first_application_frame(_error(_load_settings, "{"))
    assert frame is not None
    assert frame.name == "_load_settings"
    assert frame.filename == __file__
    frame = first_application_frame(_error(_connect, "nonsense://"))
    assert frame is not None and frame.name == "_connect"


def test_raised_at_shows_the_application_frame_first_then_the_library_frames() -> None:
    lines = raised_at(_error(_connect, "nonsense://"))
    assert lines[0].startswith(f'  File "{__file__}"') and lines[0].endswith("in _connect")
    assert lines[1].strip().startswith("return sqlalchemy.create_engine(url)")
    # (3.11+ may add a line of carets under each source line)
    libraries = lines.index("then, in libraries (innermost last):")
    assert libraries in (2, 3)
    files = [line for line in lines[libraries:] if line.startswith('  File "')]
    assert files and all("sqlalchemy" in line for line in files)


def test_library_files_are_not_the_application() -> None:
    assert not is_application_file(json.__file__)
    assert not is_application_file(sqlalchemy.__file__)
    assert not is_application_file(interlace.engine.__file__)
    assert not is_application_file("<frozen importlib._bootstrap>")
    assert is_application_file(__file__)


def test_without_an_application_frame_the_innermost_frames_are_shown() -> None:
    try:
        json.loads("{")
    except ValueError as error:
        error.__traceback__ = error.__traceback__.tb_next  # type: ignore[union-attr]
        lines = raised_at(error)
    assert "json" in lines[0]
    assert "then, in libraries" not in "\n".join(lines)


def test_the_failure_report_of_an_application_error_names_its_frame() -> None:
    error = _error(_connect, "nonsense://")
    start = Decision(0, "main", 0, "start connect", ("main",), False)
    failure = Failure(
        Outcome.VIOLATION, error, "interlace:v1:m:s:random:0:x", Trace((start,)), 0, 0
    )
    lines = failure_report(failure, [("replay", "interlace replay '...'")], width=100).splitlines()
    assert lines[0].startswith(type(error).__name__)
    where = lines.index("raised at:")
    assert lines[where + 1].endswith("in _connect")
