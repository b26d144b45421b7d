"""Simulations of the editor chat (PR-0009): concurrent chat requests against a real database.

- ``identical``: the card's case, the same question twice at once, from two
  processes (one guard each) and from one process (one shared guard); the
  pre-fix handler as canaries: the misplaced reply (SQLite and PostgreSQL)
  and the lost message (PostgreSQL only, on a chat that already exists);
- ``different``: different questions at once, and another teacher's chat;
- ``cancelled``: a request cancelled mid-stream while another one runs;
- ``provider_error``: the LLM fails mid-stream while another request runs;
- ``http``: the same through the ASGI app with httpx (SSE read and parsed).

``world`` holds the simulated deployment, ``invariants`` what must hold.
"""
