"""Serve the editor chat with uvicorn: `python -m editor_chat [--port 8000] ...`.

Try it with curl (any UUIDs will do):

    curl -N -X POST http://127.0.0.1:8000/tools/6f1c3a52-5a2b-4b9e-9a51-0c1f1f0e2d11/chat \\
         -H 'X-User-Id: 0b8f7e8e-2c43-4f4a-8d7e-3f1a2b3c4d5e' \\
         -H 'Content-Type: application/json' -d '{"message": "Hej!"}'
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from editor_chat.provider import FakeProvider
from editor_chat.web import DEFAULT_DATABASE_URL, create_app

DATABASE_URL_ENV = "EDITOR_CHAT_DATABASE_URL"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m editor_chat",
        description="Serve the editor chat (the reference system under test) over HTTP.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV, DEFAULT_DATABASE_URL),
        help=f"SQLAlchemy async URL (default: ${DATABASE_URL_ENV} or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--variant",
        choices=["fixed", "pre_fix"],
        default="fixed",
        help="the PR-0009 handler (fixed) or the one it replaced (pre_fix)",
    )
    parser.add_argument(
        "--reply-delay",
        type=float,
        default=0.2,
        help="seconds the fake LLM waits before each chunk of its reply",
    )
    args = parser.parse_args(argv)
    app = create_app(
        args.database_url,
        FakeProvider(chunks=5, delay=args.reply_delay),
        variant=args.variant,
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
