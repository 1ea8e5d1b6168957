"""Access control: users, roles, the access decision, four-eyes approvals, streaming links."""
