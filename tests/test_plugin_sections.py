"""Every plugin's own config section is one typed options object built by ``hookspecs.parse_options``:
a misspelt key or a wrong type shows in ``cf doctor`` (and stops the plugin's start) with one line
naming the section and the key. ``[crm]``, the 1.0 name of ``[plugins.crm_soap]``, is still read
with a deprecation note; both at once are refused."""

from __future__ import annotations

import json
import logging

import pytest
from cf_transcribe_sphinx import transcribe as sphinx_transcribe
from cf_transcribe_whisper import transcribe as whisper_transcribe

from cfcore.doctor import run_checks
from hookspecs.types import AudioClip, ChannelRole, TranscriptionUnavailable

CASES = [
    ('[plugins.pbx_asterisk]\nhost = "pbx"\nprot = 5038\n',
     "plugins.pbx_asterisk.prot is not an option (choose one of: action_timeout, advisor_variable, "),
    ('[plugins.pbx_asterisk]\nhost = "pbx"\nport = "5038"\n', "plugins.pbx_asterisk.port must be int, got str"),
    ('[plugins.mobile_ons]\nari_url = "http://pbx:8088"\nari_usernme = "u"\n',
     "plugins.mobile_ons.ari_usernme is not an option (choose one of: advisors, allowed_prefixes, "),
    ('[plugins.mobile_ons]\nari_url = "http://pbx:8088"\n[plugins.mobile_ons.announcement]\nid = "a"\nversion = 3\n'
     'media = "sound:a"\nsha256 = "00"\n', "plugins.mobile_ons.announcement.version must be str, got int"),
    ('[plugins.pbx_siprec]\nsip_port = "5060"\n', "plugins.pbx_siprec.sip_port must be int, got str"),
    ('[[plugins.pbx_siprec.src]]\nname = "sbc1"\nadresses = ["192.0.2.0/28"]\n',
     "plugins.pbx_siprec.src[0].adresses is not an option (choose one of: addresses, name)"),
    ("[plugins.crm_soap]\nmax_body_byte = 4096\n",
     "plugins.crm_soap.max_body_byte is not an option (choose one of: client_fault_status, clients, "),
    ('[plugins.crm_soap.clients.main]\nusername = "crm"\npassword = { env = "CF_TEST_SECTIONS_PW" }\n'
     'allowed_users = "adam"\n', "plugins.crm_soap.clients.main.allowed_users must be a list, got str"),
    ("[crm]\nclock_skew = 30\n", "crm.clock_skew is not an option (choose one of: client_fault_status, "),
    ('[notify.mail]\ntype = "smtp"\nhost = "mail"\nsender = "cf@x.example"\nrecipients = ["dpo@x.example"]\n'
     "prot = 25\n", "notify.mail.prot is not an option (choose one of: allow_plaintext_auth, cafile, "),
    ('[notify.hook]\ntype = "webhook"\nurl = "https://x.example/h"\nsecret = { env = "CF_TEST_SECTIONS_PW" }\n'
     'timeout = "10"\n', "notify.hook.timeout must be float, got str"),
]


@pytest.mark.parametrize(("section", "message"), CASES)
def test_cf_doctor_names_the_section_and_the_key(app, deployment, monkeypatch, section, message):
    monkeypatch.setenv("CF_TEST_SECTIONS_PW", "x" * 32)
    deployment.write_text(deployment.read_text() + "\n" + section)
    checks = run_checks(deployment)
    failed = [c for c in checks if not c.ok]
    assert failed and any(message in c.detail for c in failed), [c.line() for c in checks]
    assert any(str(deployment) in c.detail for c in failed)


def test_cf_doctor_accepts_good_sections_and_notes_the_deprecated_crm_name(app, deployment, monkeypatch, run_cf):
    monkeypatch.setenv("CF_TEST_SECTIONS_PW", "x" * 32)
    deployment.write_text(deployment.read_text() + '\n[crm]\nclock_skew_seconds = 60\n[crm.clients.main]\n'
                          'username = "crm"\npassword = { env = "CF_TEST_SECTIONS_PW" }\nallowed_users = ["adam"]\n'
                          '\n[plugins.pbx_siprec]\nsip_port = 5070\n')
    proc = run_cf("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["plugin:crm_soap"]["ok"] and "[crm] is deprecated and read as [plugins.crm_soap]" in \
        checks["plugin:crm_soap"]["detail"]
    assert checks["plugin:pbx_siprec"]["ok"] and checks["plugin:pbx_siprec"]["detail"] == "options accepted"
    # the same keys under the new name: no note; both names at once: refused
    text = deployment.read_text()
    deployment.write_text(text.replace("[crm]", "[plugins.crm_soap]").replace("[crm.clients", "[plugins.crm_soap.clients"))
    checks = {c["name"]: c for c in json.loads(run_cf("doctor", "--json").stdout)}
    assert checks["plugin:crm_soap"]["detail"] == "options accepted"
    deployment.write_text(deployment.read_text() + "\n[crm]\nmax_body_bytes = 4096\n")
    proc = run_cf("doctor")
    assert proc.returncode == 1 and "both [crm] and [plugins.crm_soap] are written" in proc.stdout


@pytest.mark.cf_plugins("store_local", "crm_soap")
def test_the_crm_context_carries_the_built_options_and_warns_once_for_the_old_name(deployment, make_app,
                                                                                  monkeypatch, caplog):
    from cf_crm_soap.options import CrmSoapOptions, from_context

    monkeypatch.setenv("CF_TEST_SECTIONS_PW", "x" * 32)
    deployment.write_text(deployment.read_text() + '\n[crm]\nclient_fault_status = 500\n[crm.clients.main]\n'
                          'username = "crm"\npassword = { env = "CF_TEST_SECTIONS_PW" }\nallowed_users = ["Adam"]\n')
    app = make_app(deployment)
    with caplog.at_level(logging.WARNING, logger="cfcore.app"):
        ctx = app.integration_context("crm_soap")
        app.integration_context("crm_soap")
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == [
        f"{deployment}: [crm] is deprecated and read as [plugins.crm_soap] until CallFort 2.0; rename the section "
        "(and its sub-tables [crm.*]) to [plugins.crm_soap]"]
    assert isinstance(ctx.options, CrmSoapOptions) and ctx.section == "crm"
    crm = from_context(ctx)
    assert crm.client_fault_status == 500 and crm.clients[0].allowed_users == frozenset({"adam"})
    assert "x" * 32 not in repr(ctx.options)


def _clip() -> AudioClip:
    return AudioClip(recording_id="r", role=ChannelRole.ADVISOR, pcm_s16le=bytes(1600), sample_rate=8000)


@pytest.mark.parametrize(("engine", "settings", "message"), [
    (whisper_transcribe, {"engine": "whisper", "whisper": {"model_pth": "/m"}},
     "transcription.whisper.model_pth is not an option (choose one of: beam_size, compute_type, "),
    (whisper_transcribe, {"engine": "whisper", "whisper": {"model_path": "/m", "beam_size": "5"}},
     "transcription.whisper.beam_size must be int, got str"),
    (sphinx_transcribe, {"sphinx": {"models": {"de": {"hmm": "/a", "lm": "/b", "dic": "/c"}}}},
     "transcription.sphinx.models.de.dic is not an option (choose one of: dict, hmm, lm)"),
    (sphinx_transcribe, {"sphinx": {"model": {}}}, "transcription.sphinx.model is not an option"),
])
def test_a_transcription_engine_refuses_its_section_naming_the_key(engine, settings, message):
    with pytest.raises(TranscriptionUnavailable) as err:
        engine(_clip(), "de", settings)
    assert message in str(err.value)
