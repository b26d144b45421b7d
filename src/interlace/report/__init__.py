"""Reports of failures: the interleaving table (text)."""

from interlace.report.table import interleaving_table

__all__ = ["interleaving_table"]
