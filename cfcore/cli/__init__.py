"""The ``cf`` command. Each ``*_cmd`` module of this package adds its subcommands in ``register``."""
