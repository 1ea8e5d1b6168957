"""Shared pytest set-up: area fixture modules are registered here (one line each)."""

pytest_plugins = [
    "conftest_s3",
    "conftest_sync",
]
