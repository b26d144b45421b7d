"""The engine: controlled loop, director, virtual clock, traces. Private; see ``interlace``."""
