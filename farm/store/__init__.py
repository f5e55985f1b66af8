"""Durable state: the job store (SQLAlchemy: SQLite by default, PostgreSQL by URL) and the
artifact store (fsspec: a local folder by default, any fsspec URL)."""
