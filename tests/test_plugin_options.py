"""Typed options: one helper in hookspecs builds a plugin's section, refusing unknown keys,
wrong types, missing values and secrets written in clear."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

from cfcore.config import load_config
from cfcore.errors import ConfigError
from cfcore.fis.deliver import build_notifier
from hookspecs import OptionsError, Secret, parse_options


@attrs.frozen(kw_only=True)
class Opts:
    host: str
    port: int = 5038
    ratio: float = 1.0
    tls: bool = False
    secret: Secret | None = attrs.field(default=None, repr=False)
    spool: Path | None = None
    advisors: Mapping[str, str] = attrs.field(factory=dict)
    recipients: list[str] | str = attrs.field(factory=list)


def test_a_section_becomes_a_typed_object():
    o = parse_options(Opts, {"host": "pbx1", "port": 5039, "ratio": 2, "secret": Secret("s3cr3t"),
                             "spool": "/var/spool", "advisors": {"PJSIP/100": "A100"}, "recipients": "dpo@x"},
                      where="plugins.acme")
    assert o.port == 5039 and o.ratio == 2.0 and isinstance(o.ratio, float) and o.spool == Path("/var/spool")
    assert o.advisors == {"PJSIP/100": "A100"} and o.recipients == "dpo@x" and "s3cr3t" not in repr(o)
    assert parse_options(Opts, {"host": "h", "recipients": ["a", "b"]}, where="x").recipients == ["a", "b"]


@pytest.mark.parametrize("section,message", [
    ({"host": "h", "prot": 1}, r"plugins\.acme\.prot is not an option \(choose one of: advisors, host, port, "),
    ({}, r"plugins\.acme\.host is required"),
    ({"host": "h", "port": "5038"}, r"plugins\.acme\.port must be int, got str"),
    ({"host": "h", "port": True}, r"plugins\.acme\.port must be int, got bool"),
    ({"host": "h", "tls": "yes"}, r"plugins\.acme\.tls must be bool"),
    ({"host": "h", "secret": "in clear"}, r'plugins\.acme\.secret is a secret: write it as \{ env = "NAME" \}'),
    ({"host": "h", "advisors": {"PJSIP/100": 100}}, r"plugins\.acme\.advisors\.PJSIP/100 must be str"),
    ({"host": "h", "recipients": [1]}, r"plugins\.acme\.recipients"),
])
def test_bad_sections_are_refused_with_the_key(section, message):
    with pytest.raises(OptionsError, match=message):
        parse_options(Opts, section, where="plugins.acme")


def test_a_notifier_section_is_checked_by_its_options_class(deployment, make_app, monkeypatch):
    monkeypatch.setenv("CF_TEST_HOOK_SECRET", "x" * 32)
    with deployment.open("a") as f:
        f.write('\n[notify.hook]\ntype = "webhook"\nurl = "https://example.invalid/h"\n'
                'secret = { env = "CF_TEST_HOOK_SECRET" }\ntimeuot = 3\n')
    app = make_app(deployment)
    with pytest.raises(ConfigError, match=r"notify\.hook\.timeuot is not an option \(choose one of: cafile, secret, "
                                          r"timeout, url, verify\)"):
        build_notifier(app, "hook")
    assert load_config(deployment).section("notify.hook")["timeuot"] == 3
    with deployment.open("a") as f:  # a secret in clear is refused when the file is read (cfcore.config)
        f.write('\n[notify.clear]\ntype = "webhook"\nurl = "https://example.invalid/h"\nsecret = "in-clear-in-the-file"\n')
    with pytest.raises(ConfigError, match=r"notify\.clear\.secret is a secret"):
        load_config(deployment)


def test_a_store_section_is_checked_by_its_options_class(deployment, make_app):
    text = deployment.read_text()
    assert '[stores.primary]' in text
    deployment.write_text(text.replace('[stores.primary]\n', '[stores.primary]\nrooot = "x"\n', 1))
    app = make_app(deployment)
    with pytest.raises(ConfigError, match=r"stores\.primary\.rooot is not an option \(choose one of: root\)"):
        app.stores  # noqa: B018
