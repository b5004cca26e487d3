"""Shared pytest set-up. The W&B stand-in's fixtures are a plugin; the sandbox fixtures live in
tests/integration/conftest.py."""

pytest_plugins = ["tests.standin.fixtures"]
