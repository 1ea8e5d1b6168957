"""In-tree default plugin: keyring."""
