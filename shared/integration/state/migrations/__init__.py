"""Alembic's script folder for the state database (run through :mod:`..migrate`)."""
