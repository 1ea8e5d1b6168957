"""Hostile and broken input to the CRM's SOAP endpoint on a real server: wrong passwords,
replayed nonces, stale tokens, XXE, billion laughs, oversized bodies, schema violations and fuzzed
requests. Each gets a SOAP fault with a 4xx status; none a 500 or a traceback."""

from __future__ import annotations

import os
import random
from datetime import timedelta

import httpx
import pytest
import zeep
from crm_helpers import CRM_PASSWORD, crm_world, envelope
from sqlalchemy import select

from cfcore.db.models import AuditEntry


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with crm_world(tmp_path_factory.mktemp("crm-attacks")) as w:
        yield w


def created(world, delta: float = 0.0) -> str:
    return (world.clock.now() + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(world, xml: str | bytes, **kw) -> httpx.Response:
    data = xml.encode() if isinstance(xml, str) else xml
    return httpx.post(f"{world.server.base}/soap/crm", content=data, timeout=30,
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', **kw.pop("headers", {})},
                      **kw)


def meta(world, call_id: str | None = None) -> str:
    return f"<crm:GetCallMetadata><crm:CallId>{call_id or world.rec_adam}</crm:CallId></crm:GetCallMetadata>"


def assert_fault(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert "Fault" in r.text and "Traceback" not in r.text and 'File "' not in r.text
    if code:
        assert f":{code}</faultcode>" in r.text, r.text[:500]


def test_a_valid_hand_written_request_is_answered(world):
    r = post(world, envelope(meta(world), created=created(world), nonce=os.urandom(16)))
    assert r.status_code == 200, r.text
    assert world.rec_adam in r.text and "<tns:OwnCall>true</tns:OwnCall>" in r.text


def test_wrong_password_and_unknown_account_get_the_same_fault(world):
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("adam", "GetCallMetadata", client=world.zeep(password="wrong-password-0123456789"),
                   CallId=world.rec_adam)
    assert e.value.message == "authentication failed"
    wrong = post(world, envelope(meta(world), password="nope-nope-nope-nope", created=created(world),
                                 nonce=os.urandom(16)))
    unknown = post(world, envelope(meta(world), username="crm-other", created=created(world), nonce=os.urandom(16)))
    assert_fault(wrong, 401, "Client.Authentication")
    assert_fault(unknown, 401, "Client.Authentication")
    assert wrong.text == unknown.text
    with world.app.catalog.session() as s:
        refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "integration.refused")).all()
    assert any("wrong password" in e.detail for e in refused)
    assert all(CRM_PASSWORD not in e.detail and "nope-nope" not in e.detail for e in refused)


def test_a_replayed_nonce_is_refused(world):
    xml = envelope(meta(world), created=created(world), nonce=os.urandom(16))
    assert post(world, xml).status_code == 200
    assert_fault(post(world, xml), 401, "Client.Authentication")


def test_tokens_outside_the_clock_skew_window_are_refused(world):
    for delta in (-301, 301, -86400):
        assert_fault(post(world, envelope(meta(world), created=created(world, delta), nonce=os.urandom(16))), 401)
    assert post(world, envelope(meta(world), created=created(world, -250), nonce=os.urandom(16))).status_code == 200


def test_clear_text_passwords_missing_tokens_and_short_nonces_are_refused(world):
    assert_fault(post(world, envelope(meta(world), created=created(world), nonce=os.urandom(16),
                                      password_type="PasswordText")), 401)
    assert_fault(post(world, envelope(meta(world), created=created(world), nonce=b"short")), 401)
    bare = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:crm="urn:callfort:crm:1">'
            f"<soapenv:Body>{meta(world)}</soapenv:Body></soapenv:Envelope>")
    assert_fault(post(world, bare), 401, "Client.Authentication")


def test_xxe_and_billion_laughs_are_refused_before_parsing(world):
    xxe = ('<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           + envelope(meta(world, "&xxe;"), created=created(world), nonce=os.urandom(16)).split("?>", 1)[1])
    r = post(world, xxe)
    assert_fault(r, 400, "Client.DTDForbidden")
    assert "root:" not in r.text
    lol = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE lolz [{lol}]>'
            + envelope(meta(world, "&lol9;"), created=created(world), nonce=os.urandom(16)).split("?>", 1)[1])
    assert_fault(post(world, bomb), 400, "Client.DTDForbidden")
    # lower-case and spaced variants too
    assert_fault(post(world, "<!doctype x>" + envelope(meta(world), created=created(world), nonce=os.urandom(16))), 400)


def test_oversized_bodies_get_413(world):
    padding = "<!-- " + "x" * 40000 + " -->"
    big = envelope(meta(world), created=created(world), nonce=os.urandom(16), header_extra=padding)
    assert_fault(post(world, big), 413, "Client.TooLarge")

    def chunks():
        data = big.encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    chunked = httpx.post(f"{world.server.base}/soap/crm", content=chunks(), timeout=30,
                         headers={"Content-Type": "text/xml"})
    assert_fault(chunked, 413)


def test_malformed_xml_and_non_soap_get_faults(world):
    assert_fault(post(world, "<soapenv:Envelope><unclosed>"), 400, "Client.MalformedXML")
    assert_fault(post(world, "not xml at all"), 400, "Client.MalformedXML")
    assert_fault(post(world, '<Envelope xmlns="urn:other"/>'), 400, "Client.NotSoap11")
    assert httpx.put(f"{world.server.base}/soap/crm", content=b"x", timeout=30).status_code == 405
    assert httpx.get(f"{world.server.base}/soap/crm", timeout=30).status_code == 405


@pytest.mark.parametrize("body", [
    "<crm:GetCallMetadata><crm:CallId>xyz</crm:CallId></crm:GetCallMetadata>",
    f"<crm:GetCallMetadata><crm:CallId>{'a' * 33}</crm:CallId></crm:GetCallMetadata>",
    f"<crm:GetCallMetadata><crm:CallId>{'A' * 32}</crm:CallId></crm:GetCallMetadata>",
    "<crm:GetCallMetadata></crm:GetCallMetadata>",
    f"<crm:GetCallMetadata><crm:CallId>{'a' * 32}</crm:CallId><crm:Extra>1</crm:Extra></crm:GetCallMetadata>",
    "<crm:SearchCalls><crm:CustomerId>K-1</crm:CustomerId><crm:Limit>1000</crm:Limit></crm:SearchCalls>",
    "<crm:SearchCalls><crm:CustomerId>K-1</crm:CustomerId><crm:Offset>-1</crm:Offset></crm:SearchCalls>",
    "<crm:SearchCalls><crm:CustomerId>K-1</crm:CustomerId><crm:From>yesterday</crm:From></crm:SearchCalls>",
    f"<crm:SearchCalls><crm:CustomerId>{'K' * 200}</crm:CustomerId></crm:SearchCalls>",
    "<crm:SearchCalls><crm:PhoneNumber>call me maybe</crm:PhoneNumber></crm:SearchCalls>",
    f"<crm:RequestAccess><crm:CallId>{'a' * 32}</crm:CallId><crm:Purpose>Everything</crm:Purpose>"
    "<crm:Reason>because</crm:Reason></crm:RequestAccess>",
    f"<crm:RequestAccess><crm:CallId>{'a' * 32}</crm:CallId><crm:Purpose>Playback</crm:Purpose>"
    f"<crm:Reason>{'r' * 600}</crm:Reason></crm:RequestAccess>",
    "<crm:NoSuchOperation/>",
])
def test_schema_violations_are_client_faults(world, body):
    r = post(world, envelope(body, created=created(world), nonce=os.urandom(16)))
    assert_fault(r, 400)
    assert ":Client" in r.text


def test_fuzzed_requests_never_give_500_or_a_traceback(world):
    rng = random.Random(18)
    junk = ["<", ">", "&", "&amp;", "]]>", "<![CDATA[", "\x00", "\u202e", "'", '"', "-1", "9" * 40, "<a>", "</crm:Limit>",
            "xmlns:x='urn:x'", "<?pi x?>", "\ud7ff", "𝄞"]
    statuses = []
    for i in range(80):
        # a fresh nonce and token for each variant, then mutate the body or the whole request
        xml = envelope("<crm:SearchCalls><crm:CustomerId>K-1</crm:CustomerId><crm:Limit>5</crm:Limit></crm:SearchCalls>",
                       created=created(world), nonce=os.urandom(16))
        data = bytearray(xml.encode("utf-8"))
        for _ in range(rng.randint(1, 4)):
            if len(data) < 2:
                break
            kind = rng.random()
            pos = rng.randrange(len(data))
            if kind < 0.3:
                data[pos] = rng.randrange(256)
            elif kind < 0.5:
                del data[pos:pos + rng.randint(1, 30)]
            elif kind < 0.8:
                data[pos:pos] = rng.choice(junk).encode("utf-8", "surrogatepass")
            else:
                data = data[:pos]
        r = post(world, bytes(data))
        statuses.append(r.status_code)
        assert r.status_code != 500 and r.status_code < 500, (i, r.status_code, r.text[:300])
        assert "Traceback" not in r.text and 'File "' not in r.text
        if r.status_code != 200:
            assert "Fault" in r.text, (i, r.status_code, r.text[:300])
    assert any(s != 200 for s in statuses)


def test_fuzzed_field_values_in_well_formed_requests_give_faults_not_500(world):
    from xml.sax.saxutils import escape

    rng = random.Random(1818)
    alphabet = "abcdef0123456789KZ-+ ()/.:_@<>&'\"é€\t" + "\u00a0\u2028"
    ops = ["GetCallMetadata", "GetPlaybackLink", "GetTranscriptLink", "GetAccessRequestStatus", "SearchCalls",
           "RequestAccess"]
    for i in range(60):
        def value() -> str:
            n = rng.choice([0, 1, 3, 31, 32, 33, 64, 129, 600])
            return escape("".join(rng.choice(alphabet) for _ in range(n)))

        op = rng.choice(ops)
        if op == "SearchCalls":
            body = (f"<crm:SearchCalls><crm:CustomerId>{value()}</crm:CustomerId><crm:PhoneNumber>{value()}</crm:PhoneNumber>"
                    f"<crm:From>{value()}</crm:From><crm:Offset>{rng.randint(-5, 200000)}</crm:Offset>"
                    f"<crm:Limit>{rng.randint(-5, 500)}</crm:Limit></crm:SearchCalls>")
        elif op == "RequestAccess":
            body = (f"<crm:RequestAccess><crm:CallId>{value()}</crm:CallId><crm:Purpose>{value()}</crm:Purpose>"
                    f"<crm:Reason>{value()}</crm:Reason></crm:RequestAccess>")
        elif op == "GetAccessRequestStatus":
            body = f"<crm:{op}><crm:RequestId>{value()}</crm:RequestId></crm:{op}>"
        else:
            body = f"<crm:{op}><crm:CallId>{value()}</crm:CallId></crm:{op}>"
        r = post(world, envelope(body, created=created(world), nonce=os.urandom(16)))
        assert r.status_code in (200, 400), (i, op, r.status_code, r.text[:300])
        assert "Traceback" not in r.text and 'File "' not in r.text
        if r.status_code == 400:
            assert ":Client" in r.text
