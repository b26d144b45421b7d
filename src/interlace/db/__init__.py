"""Database integration: SQLAlchemy instrumentation, PostgreSQL providers and lock monitoring."""
