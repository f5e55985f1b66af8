"""Alembic migrations of the job store (run by JobStore.migrate)."""
