"""The CRM's SOAP service on a real uvicorn server, with zeep as the CRM's client (WSDL loaded from
the running server): who gets which links, four-eyes, faults, and no text or audio in any body."""

from __future__ import annotations

import pytest
import zeep
from crm_helpers import crm_world
from zeep.plugins import HistoryPlugin

from cfcore.access import approvals


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with crm_world(tmp_path_factory.mktemp("crm")) as w:
        yield w


def fault(excinfo):
    return excinfo.value.code.split(":")[-1], excinfo.value.message


def test_wsdl_from_the_running_server_lists_the_six_operations(world):
    client = world.zeep()
    ops = set(client.service._binding._operations)  # noqa: SLF001 - zeep has no public list
    assert ops == {"SearchCalls", "GetCallMetadata", "GetPlaybackLink", "GetTranscriptLink", "RequestAccess",
                   "GetAccessRequestStatus"}
    [service] = client.wsdl.services.values()
    [port] = service.ports.values()
    assert port.binding_options["address"] == f"{world.server.base}/soap/crm"


def test_search_by_customer_shows_the_advisors_own_calls(world):
    calls = world.call("adam", "SearchCalls", CustomerId="K-1")
    assert [c.CallId for c in calls] == [world.rec_adam]
    c = calls[0]
    assert c.OwnCall is True and c.HasTranscript is True and c.TwoSided is True and c.AdvisorId == "A1"
    assert world.call("adam", "SearchCalls", PhoneNumber="030 1234567")[0].CallId == world.rec_adam
    assert not world.call("adam", "SearchCalls", CustomerId="K-404")  # zeep: an empty sequence is None
    # a supervisor sees every call of the customer, paged
    sue = world.call("sue", "SearchCalls", CustomerId="K-1", Limit=1)
    sue2 = world.call("sue", "SearchCalls", CustomerId="K-1", Limit=1, Offset=1)
    assert {sue[0].CallId, sue2[0].CallId} == {world.rec_adam, world.rec_berta}


def test_only_the_calls_advisor_gets_links_others_approval_required(world):
    link = world.call("adam", "GetPlaybackLink", CallId=world.rec_adam)
    assert link.Url.startswith(f"{world.server.base}/api/stream/{world.rec_adam}?t=") and link.NeedsUserSession
    tlink = world.call("adam", "GetTranscriptLink", CallId=world.rec_adam)
    assert tlink.Url.startswith(f"{world.server.base}/api/transcripts/{world.rec_adam}?t=")
    for op in ("GetPlaybackLink", "GetTranscriptLink"):
        with pytest.raises(zeep.exceptions.Fault) as e:
            world.call("berta", op, CallId=world.rec_adam)
        assert fault(e)[0] == "Client.ApprovalRequired"
        with pytest.raises(zeep.exceptions.Fault) as e:
            world.call("sue", op, CallId=world.rec_adam)  # a supervisor too: four-eyes
        assert fault(e)[0] == "Client.ApprovalRequired"


def test_unknown_and_forbidden_calls_give_the_same_fault(world):
    with pytest.raises(zeep.exceptions.Fault) as forbidden:
        world.call("berta", "GetCallMetadata", CallId=world.rec_adam)
    with pytest.raises(zeep.exceptions.Fault) as unknown:
        world.call("berta", "GetCallMetadata", CallId="0" * 32)
    assert fault(forbidden) == fault(unknown) == ("Client.NotFoundOrForbidden", "no such call, or not permitted")
    with pytest.raises(zeep.exceptions.Fault) as unknown_link:
        world.call("adam", "GetPlaybackLink", CallId="f" * 32)
    assert fault(unknown_link)[0] in ("Client.NotFoundOrForbidden", "Client.ApprovalRequired")
    meta = world.call("adam", "GetCallMetadata", CallId=world.rec_adam)
    assert meta.CallId == world.rec_adam and meta.OwnCall


def test_opening_a_link_needs_the_users_own_session(world):
    import httpx

    tlink = world.call("adam", "GetTranscriptLink", CallId=world.rec_adam)
    plink = world.call("adam", "GetPlaybackLink", CallId=world.rec_adam)
    anonymous = httpx.get(tlink.Url, timeout=30)
    assert anonymous.status_code == 401
    with world.session("berta") as c:  # another user's session: refused like a forged link
        assert c.get(tlink.Url).status_code == 403
        assert c.get(plink.Url).status_code == 403
    with world.session("adam") as c:
        doc = c.get(tlink.Url)
        assert doc.status_code == 200, doc.text
        words = doc.json()["segments"]
        assert any(w["text"] == "money" and w["role"] == "customer" for w in words)
        audio = c.get(plink.Url)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
        # a transcript link never opens the audio, an audio link never the transcript
        swapped_t = plink.Url.replace("/api/stream/", "/api/transcripts/")
        swapped_a = tlink.Url.replace("/api/transcripts/", "/api/stream/")
        assert c.get(swapped_t).status_code == 403 and c.get(swapped_a).status_code == 403


def test_no_audio_and_no_transcript_text_in_any_soap_body(world):
    from lxml import etree

    history = HistoryPlugin(maxlen=50)
    client = world.zeep(history=history)
    bodies = []
    for op, kwargs in (("SearchCalls", {"CustomerId": "K-1"}), ("GetCallMetadata", {"CallId": world.rec_adam}),
                       ("GetPlaybackLink", {"CallId": world.rec_adam}),
                       ("GetTranscriptLink", {"CallId": world.rec_adam})):
        world.call("adam", op, client=client, **kwargs)
        bodies.append(etree.tostring(history.last_received["envelope"]).decode())
    text = "\n".join(bodies)
    assert "money" not in text and "help" not in text and "RIFF" not in text
    assert "K-1" not in text and "1234567" not in text  # no customer identifier either


def test_four_eyes_gives_another_advisor_the_transcript_once_approved(world):
    req = world.call("berta", "RequestAccess", CallId=world.rec_adam, Purpose="Transcript",
                     Reason="customer asks berta about the call")
    assert req.State == "requested" and req.CallId == world.rec_adam and req.Purpose == "Transcript"
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("berta", "GetTranscriptLink", CallId=world.rec_adam, RequestId=req.RequestId)
    assert fault(e)[0] == "Client.ApprovalRequired"
    with pytest.raises(zeep.exceptions.Fault) as e:  # adam cannot use berta's request
        world.call("adam", "GetAccessRequestStatus", RequestId=req.RequestId)
    assert fault(e)[0] == "Client.NotFoundOrForbidden"
    from access_helpers import ctx_for

    approvals.approve(world.app, ctx_for(world.app, "sue"), req.RequestId)
    assert world.call("berta", "GetAccessRequestStatus", RequestId=req.RequestId).State == "approved"
    link = world.call("berta", "GetTranscriptLink", CallId=world.rec_adam, RequestId=req.RequestId)
    with world.session("berta") as c:
        r = c.get(link.Url)
        assert r.status_code == 200 and any(w["text"] == "money" for w in r.json()["segments"])
    assert world.call("berta", "GetAccessRequestStatus", RequestId=req.RequestId).State == "executed"
    with pytest.raises(zeep.exceptions.Fault) as e:  # an approval runs once
        world.call("berta", "GetTranscriptLink", CallId=world.rec_adam, RequestId=req.RequestId)
    assert fault(e)[0] == "Client.NotFoundOrForbidden"


def test_an_advisor_cannot_request_access_to_their_own_or_an_unknown_call(world):
    with pytest.raises(zeep.exceptions.Fault) as own:
        world.call("adam", "RequestAccess", CallId=world.rec_adam, Purpose="Playback", Reason="my own call")
    assert fault(own)[0] == "Client.Invalid"
    with pytest.raises(zeep.exceptions.Fault) as unknown:
        world.call("berta", "RequestAccess", CallId="1" * 32, Purpose="Playback", Reason="a guess")
    assert fault(unknown)[0] == "Client.NotFoundOrForbidden"


def test_the_acting_user_must_be_on_the_crms_allow_list(world):
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("otto", "SearchCalls", CustomerId="K-1")  # a real user, not allowed for this CRM
    assert fault(e)[0] == "Client.UnknownUser"
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("nobody", "SearchCalls", CustomerId="K-1")
    assert fault(e)[0] == "Client.UnknownUser"


def test_every_soap_read_is_audited_as_the_acting_user(world):
    from access_helpers import last_audit

    world.call("adam", "GetCallMetadata", CallId=world.rec_adam)
    e = last_audit(world.app, action="recording.show", user="adam")
    assert e.function == "soap.crm.GetCallMetadata" and e.ip == "127.0.0.1" and e.host == "crm-main"
    world.call("adam", "GetTranscriptLink", CallId=world.rec_adam)
    e = last_audit(world.app, action="link.create", user="adam")
    assert e.function == "soap.crm.GetTranscriptLink" and e.detail["purpose"] == "transcript"


def test_the_crm_heard_of_both_calls(world):
    recorded = {f["CallId"]: f for op, f in world.sim.received if op == "NotifyCallRecorded"}
    assert set(recorded) == {world.rec_adam, world.rec_berta}
    assert recorded[world.rec_adam]["AdvisorId"] == "A1" and recorded[world.rec_adam]["TwoSided"] is True
    assert world.sim.refused == 0
