"""cfcore.testing loads no installed plugin unless asked (llm#626)."""

from __future__ import annotations

import pytest

from cfcore.testing import DEFAULT_TEST_PLUGINS


def test_plugin_authors_get_only_the_default_store(pytester):
    pytester.makepyfile("""
        def test_loaded(app):
            names = {s.name for s in app.pm.statuses}
            assert "store_local" in names
            assert not names & {"pbx_asterisk", "store_s3", "notify_smtp", "notify_webhook"}, names
    """)
    pytester.runpytest_subprocess("-p", "cfcore.testing", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_marker_asks_for_more(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.cf_plugins("store_local", "pbx_asterisk")
        def test_loaded(app):
            names = {s.name for s in app.pm.statuses}
            assert {"store_local", "pbx_asterisk"} <= names and "store_s3" not in names

        @pytest.mark.cf_plugins("store_local", "no_such_plugin")
        def test_missing(app):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "cfcore.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*plugin no_such_plugin is not installed*"])


def test_this_repository_loads_its_in_tree_plugins(app):
    names = {s.name for s in app.pm.statuses}
    assert {"store_local", "store_s3", "pbx_asterisk"} <= names
    assert DEFAULT_TEST_PLUGINS == ("store_local",)


@pytest.mark.cf_plugins("store_local")
def test_the_marker_works_here_too(app):
    assert "pbx_asterisk" not in {s.name for s in app.pm.statuses}
