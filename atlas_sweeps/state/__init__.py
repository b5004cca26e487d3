"""The local state database (SQLite, versioned schema with migrations) and the per-launch lock."""
