"""Where an application error was raised: the application's frame first, then the driver's.

An error the application raised while talking to its database usually ends
deep in SQLAlchemy and the driver; the last frames of its traceback are
theirs, and the frame a person wants (the line of *their* code that ran the
statement) is further up. ``first_application_frame`` finds it: the
innermost frame that is not interlace's, nor the standard library's, nor an
installed package's (``site-packages``). ``raised_at`` renders it first, then
the frames below it, the innermost last, as a traceback would.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from traceback import FrameSummary

import interlace

_INTERLACE = os.path.dirname(os.path.abspath(interlace.__file__)) + os.sep
_PLUGIN = "_interlace_pytestplugin.py"
_LIBRARY_DIRECTORIES = tuple(
    os.path.abspath(path) + os.sep
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(key))
)
# frames below the application's frame shown at most (the innermost ones)
_BELOW = 6


def is_application_file(filename: str) -> bool:
    """Whether code in ``filename`` is the application's: not interlace, the stdlib, a package."""
    if filename.startswith("<"):
        return False  # frozen or generated code: part of the runtime
    path = os.path.abspath(filename)
    if path.startswith(_INTERLACE) or os.path.basename(path) == _PLUGIN:
        return False
    if "site-packages" in path or "dist-packages" in path:
        return False
    return not path.startswith(_LIBRARY_DIRECTORIES)


def first_application_frame(error: BaseException) -> FrameSummary | None:
    """The innermost frame of ``error``'s traceback in application code, or None."""
    frames = traceback.extract_tb(error.__traceback__)
    index = _application_index(frames)
    return None if index is None else frames[index]


def _application_index(frames: traceback.StackSummary) -> int | None:
    for index in range(len(frames) - 1, -1, -1):
        if is_application_file(frames[index].filename):
            return index
    return None


def raised_at(error: BaseException, below: int = _BELOW) -> list[str]:
    """The lines under ``raised at:``: the application's frame, then up to ``below`` inner ones.

    Without an application frame, the innermost ``below`` frames, as before.
    """
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ["(no traceback)"]
    index = _application_index(frames)
    if index is None:
        return _format(frames[-below:])
    lines = _format([frames[index]])
    inner = frames[index + 1 :]
    if not inner:
        return lines
    lines.append("then, in libraries (innermost last):")
    skipped = len(inner) - below
    if skipped > 0:
        lines.append(f"  ... {skipped} frame(s) ...")
    return lines + _format(inner[-below:])


def _format(frames: list[FrameSummary] | traceback.StackSummary) -> list[str]:
    return [line.rstrip() for entry in traceback.format_list(frames) for line in entry.splitlines()]
