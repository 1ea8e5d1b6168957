"""Catalog tables of user management and four-eyes approvals (issue 4)."""
