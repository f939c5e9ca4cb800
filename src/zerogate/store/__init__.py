"""Storage: SQLAlchemy models, repositories and migrations (SQLite or PostgreSQL)."""
