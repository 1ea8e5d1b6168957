"""Help a person can act on: no command summary is cut at "Art." (click's first-sentence rule),
and the operations commands carry an example."""

from __future__ import annotations

import click
from click.testing import CliRunner

from cfcore.cli.main import cli


def walk(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from walk(cmd, (*prefix, name))


def test_no_summary_is_cut_at_art():
    cut = [" ".join(path) for path, cmd in walk(cli) if cmd.get_short_help_str(limit=200).rstrip().endswith("Art.")]
    assert cut == []


def test_every_help_page_renders_and_the_ops_commands_have_examples():
    runner = CliRunner()
    for path, _cmd in walk(cli):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
    for path in (("doctor",), ("backup",), ("restore",), ("db",), ("db", "upgrade"), ("init",), ("serve",),
                 ("execute",)):
        out = runner.invoke(cli, [*path, "--help"]).output
        assert "Example:" in out and "cf " in out.split("Example:", 1)[1], path
