"""Retention rules: the default plugin, classes from the config, how rules combine with another
plugin's ``cf_retention_rules``, and config errors that say what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from retention_helpers import ingest
from sqlalchemy import select

from cfcore.db.models import Recording
from cfcore.errors import ConfigError, ConflictError
from cfcore.retention import change_retention, compute_retention, decide_retention, erase_recording
from hookspecs import hookimpl
from hookspecs.types import Direction, RecordingInfo, RetentionRule

ENDED = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)


def info(two_sided: bool, cls: str = "", advisor: str = "A1") -> RecordingInfo:
    return RecordingInfo(id="r" * 32, site="site-a", source="cli", advisor_id=advisor, direction=Direction.INBOUND,
                         started_at=ENDED - timedelta(minutes=5), ended_at=ENDED, two_sided=two_sided,
                         retention_class=cls)


def test_defaults(app):
    assert compute_retention(app, info(True, "mifid")) == (datetime(2029, 2, 28, 12, 0, tzinfo=UTC), "mifid-5y")
    assert compute_retention(app, info(False, "advisor-only")) == (ENDED + timedelta(days=30), "advisor-only-30d")
    # a two-sided recording without a known class still gets the MiFID duty (the safe default)
    assert compute_retention(app, info(True, "whatever"))[1] == "mifid-5y"


CLASSES = """
[retention]
mifid_years = 5
mifid_max_years = 7
advisor_only_days = 14

[retention.classes.wealth]
years = 7
advisors = ["A200"]

[retention.classes.service]
kind = "consent"
days = 90
sites = ["site-s"]
"""


def test_classes_from_config(deployment, make_app, tmp_path):
    deployment.write_text(deployment.read_text() + CLASSES)
    app = make_app(deployment)
    wealth = ingest(app, tmp_path, "2024-01-10T10:00:00+00:00", advisor="A200", name="wealth")
    plain = ingest(app, tmp_path, "2024-01-10T11:00:00+00:00", advisor="A100", name="plain")
    adv = ingest(app, tmp_path, "2024-01-10T12:00:00+00:00", advisor="A200", two_sided=False, name="adv")
    with app.catalog.session() as s:
        recs = {r.id: r for r in s.scalars(select(Recording))}
        assert (recs[wealth].retention_class, recs[wealth].retention_rule) == ("wealth", "mifid-7y")
        assert recs[wealth].retention_until.year == 2031
        assert (recs[plain].retention_class, recs[plain].retention_rule) == ("mifid", "mifid-5y")
        assert (recs[adv].retention_class, recs[adv].retention_rule) == ("advisor-only", "advisor-only-14d")
    # a consent class (selected by site): no statutory floor, so it may be erased before its end
    call = Recording(id="c" * 32, site="site-s", source="cli", advisor_id="A1", direction="in", two_sided=True,
                     started_at=ENDED - timedelta(minutes=5), ended_at=ENDED, retention_class="")
    d = decide_retention(app, call)
    assert d.retention_class == "service" and d.floor is None
    assert (d.rules[0].name, d.until) == ("consent-90d", ENDED + timedelta(days=90))


@pytest.mark.parametrize("toml, message", [
    ("[retention]\nmifid_years = 3\n", "at least 5"),
    ("[retention]\nmifid_max_years = 4\n", "below mifid_years"),
    ("[retention]\nadvisor_only_days = -1\n", "0 or more"),
    ("[retention.classes.x]\nyears = 9\n", "between 5 and 7"),
    ("[retention.classes.x]\nkind = \"forever\"\n", "choose|one of"),
    ("[retention.classes.x]\nadvisors = \"A1\"\n", "list of strings"),
    ("[retention.classes.mifid]\nyears = 6\n", "not 'mifid'"),
])
def test_config_errors_say_what_to_do(deployment, make_app, tmp_path, toml, message):
    deployment.write_text(deployment.read_text() + toml)
    app = make_app(deployment)
    with pytest.raises(ConfigError, match=message):
        compute_retention(app, info(True, "mifid"))


class Litigation:
    """Another plugin: calls of advisor A9 are evidence in a case until 2035 (a statutory duty)."""

    @hookimpl
    def cf_retention_rules(self, recording):
        if recording.advisor_id == "A9":
            return [RetentionRule(name="case-17", keep_until=datetime(2035, 1, 1, tzinfo=UTC),
                                  legal_basis="ZPO § 142 (court order)", statutory=True)]
        return []


def test_latest_duty_wins_and_statutory_rules_are_a_floor(app, tmp_path):
    app.pm.register(Litigation(), "test-litigation")
    assert compute_retention(app, info(True, "mifid", advisor="A9")) == (datetime(2035, 1, 1, tzinfo=UTC), "case-17")
    assert compute_retention(app, info(True, "mifid", advisor="A1"))[1] == "mifid-5y"
    adv = ingest(app, tmp_path, "2026-11-20T10:00:00+00:00", two_sided=False, advisor="A9")
    with pytest.raises(ConflictError, match="case-17"):  # an advisor-only call, but a plugin's duty applies
        erase_recording(app, None, adv, "request")
    with pytest.raises(ConflictError, match="legal duty"):
        change_retention(app, None, adv, "shorten", datetime(2030, 1, 1, tzinfo=UTC), "no")
