"""Help a person can act on, for every ``cf`` command and subcommand (issue 14 item 5): each has an
example, no summary is cut at "Art." or another abbreviation (click's first-sentence rule), every
``--json`` says what it prints, every ``--reason`` states its minimum length, fixed value sets are
listed as choices. The walk covers the real click tree, including commands that installed plugins
add through ``cf_cli_commands``."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from cfcore.cli.main import CfGroup, cli
from cfcore.plugins import get_plugin_manager

ABBREVIATIONS = ("Art.", "e.g.", "i.e.", "etc.", "cf.", "No.", "Nr.", "Abs.", "approx.", "vs.")
#: options whose value set is fixed, so their help must list the choices
FIXED_VALUE_OPTIONS = ("--role", "--format", "--language", "--lang")


def full_tree() -> click.Group:
    """The built-in commands plus every installed plugin's, on a copy (the global group stays as is)."""
    tree = CfGroup(name="cf", commands=dict(cli.commands), params=list(cli.params), callback=cli.callback,
                    help=cli.help)
    get_plugin_manager(None).add_cli_commands(tree)
    return tree


def walk(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from walk(cmd, (*prefix, name))


def help_page(tree: click.Group, path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(tree, [*path, "--help"], prog_name="cf", terminal_width=200)
    assert result.exit_code == 0, (path, result.output)
    return result.output


def test_no_summary_is_cut_at_an_abbreviation():
    cut = [" ".join(path) for path, cmd in walk(full_tree())
           if cmd.get_short_help_str(limit=200).rstrip().endswith(ABBREVIATIONS)]
    assert cut == []


def test_the_checks_catch_a_bad_command():
    """The rules below fail on a command that breaks them (so a green run means something)."""

    @click.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--reason", required=True, help="Why.")
    def bad(as_json: bool, reason: str) -> None:
        """Print the Art. 15 report for a person."""

    tree = CfGroup(name="cf", commands={"bad": bad}, help="\b\nExample:\n  cf bad --json")
    assert problems(tree) == {"bad": ["summary cut at an abbreviation", "no example", "--json without a description",
                                      "--reason without its minimum length"]}


def problems(tree: click.Group) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path, cmd in [((), tree), *walk(tree)]:
        page = help_page(tree, path)
        wrong = []
        if cmd.get_short_help_str(limit=200).rstrip().endswith(ABBREVIATIONS):
            wrong.append("summary cut at an abbreviation")
        example = re.search(r"^\s*Examples?:\s*$(.*)", page, re.M | re.S)
        if not example or not re.search(r"(^|\s)cf \S", example.group(1)):
            wrong.append("no example")
        for param in cmd.params:
            if not isinstance(param, click.Option):
                continue
            if "--json" in param.opts and not (param.help or "").strip():
                wrong.append("--json without a description")
            if "--reason" in param.opts and not re.search(r"at least \d+ character", param.help or ""):
                wrong.append("--reason without its minimum length")
            if set(param.opts) & set(FIXED_VALUE_OPTIONS) and not isinstance(param.type, click.Choice):
                wrong.append(f"{param.opts[0]} does not list its choices")
        if wrong:
            found[" ".join(path) or "cf"] = wrong
    return found


def test_every_command_has_an_example_and_describes_its_options():
    assert problems(full_tree()) == {}


def test_required_options_are_marked_required():
    """An option a command cannot run without is marked so click says "Missing option" up front."""
    runner = CliRunner()
    for path in (("users", "add"), ("hold", "set"), ("request",)):
        result = runner.invoke(cli, [*path], prog_name="cf")
        assert result.exit_code == 2 and "Missing" in result.output, (path, result.output)
