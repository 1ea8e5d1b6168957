"""In-tree default plugin: fis_rules."""
