"""In-tree default plugin: retention_rules."""
