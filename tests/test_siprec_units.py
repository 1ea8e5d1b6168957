"""pbx_siprec parts on their own: metadata dialects and XML attacks, SDP answers, multipart bodies,
RTP reordering/wrap/loss/SSRC change/RFC 4733 events, Avaya UUI, settings."""

from __future__ import annotations

import struct

import pytest
from cf_pbx_siprec import metadata, sdp
from cf_pbx_siprec.config import SiprecConfigError, SiprecSettings
from cf_pbx_siprec.media import RtpStream
from cf_pbx_siprec.sipmsg import SipParseError, body_parts, parse

from tests.siprec_helpers import rfc_metadata, rtp_packet

ORACLE = b"""<?xml version='1.0' encoding='UTF-8'?>
<recording xmlns='urn:ietf:params:xml:ns:recording'>
  <dataMode>complete</dataMode>
  <session id="s1"><associate-time>2026-12-02T04:00:00</associate-time>
    <extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
      <apkt:ucid>00FA080019001234567890</apkt:ucid><apkt:callerOrig>true</apkt:callerOrig>
    </extensiondata></session>
  <participant id="pA" session="s1"><nameID aor="sip:+4930123456@carrier.example"/>
    <send>stA</send><recv>stB</recv></participant>
  <participant id="pB" session="s1"><nameID aor="sip:100@pbx.example"/><send>stB</send><recv>stA</recv></participant>
  <stream id="stA" session="s1"><label>10</label></stream>
  <stream id="stB" session="s1"><label>11</label></stream>
</recording>"""

BROADWORKS = b"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="bw1"><extensiondata xmlns:bw="http://schema.broadsoft.com/siprec/extensiondata">
    <bw:extTrackingID>12345:1</bw:extTrackingID></extensiondata></session>
  <participant participant_id="a"><nameID aor="tel:+4930123456"/></participant>
  <participant participant_id="b"><nameID aor="sip:101@bw.example"/></participant>
  <stream stream_id="x" session_id="bw1"><label>1</label></stream>
  <stream stream_id="y" session_id="bw1"><label>2</label></stream>
  <participantstreamassoc participant_id="a"><send>x</send></participantstreamassoc>
  <participantstreamassoc participant_id="b"><send>y</send></participantstreamassoc>
</recording>"""


def test_rfc_metadata_label_stream_participant():
    md = metadata.parse(rfc_metadata().encode())
    assert md.participant_for_label("1", 0).aors == ["sip:100@pbx.example"]
    assert md.participant_for_label("2", 1).aors == ["sip:+4930123456@carrier.example"]
    assert md.complete


def test_oracle_draft_dialect_with_apkt_ucid():
    md = metadata.parse(ORACLE)
    assert md.participant_for_label("11", 1).aors == ["sip:100@pbx.example"]
    assert md.participant_for_label("10", 0).aors == ["sip:+4930123456@carrier.example"]
    assert md.vendor["ucid"] == "00FA080019001234567890" and md.vendor["callerOrig"] == "true"


def test_broadworks_ext_tracking_id():
    md = metadata.parse(BROADWORKS)
    assert md.vendor["extTrackingID"] == "12345:1"
    assert md.participant_for_label("2", 1).aors == ["sip:101@bw.example"]


def test_partial_metadata_merges_complete_replaces():
    first = metadata.parse(rfc_metadata().encode())
    partial = metadata.parse(rfc_metadata(advisor_aor="sip:4711@x", mode="partial").encode())
    merged = first.merge(partial)
    assert merged.participants["P-adv"].aors == ["sip:4711@x"] and "P-cus" in merged.participants
    complete = metadata.parse(b'<recording xmlns="urn:ietf:params:xml:ns:recording:1"><participant '
                              b'participant_id="only"><nameID aor="sip:1@x"/></participant></recording>')
    assert list(first.merge(complete).participants) == ["only"]


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><recording>&x;</recording>',
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><recording>&b;</recording>',
    b'<?xml version="1.0"?><!DOCTYPE recording SYSTEM "http://127.0.0.1:9/x.dtd"><recording/>',
    b'<recording xmlns="urn:ietf:params:xml:ns:recording:1"><participant>',
    b'<other/>',
    b'<recording>' + b'x' * 70000 + b'</recording>',
])
def test_xml_attacks_and_garbage_are_refused(payload):
    with pytest.raises(metadata.MetadataError):
        metadata.parse(payload)


def test_undeclared_entity_is_not_resolved():
    with pytest.raises(metadata.MetadataError):
        metadata.parse(b'<recording><participant participant_id="a"><nameID aor="&xxe;"/></participant></recording>')


def test_avaya_ucid_from_user_to_user():
    assert metadata.ucid_from_uui("00FA0800010002635A1B2C;encoding=hex") == f"{1:05d}{2:05d}{0x635A1B2C:010d}"
    assert metadata.ucid_from_uui("04FA0800010002635A1B2C") is not None
    assert metadata.ucid_from_uui("not hex") is None and metadata.ucid_from_uui(None) is None


OFFER = b"""v=0\r
o=SRC 1 1 IN IP4 192.0.2.1\r
s=-\r
c=IN IP4 192.0.2.1\r
t=0 0\r
m=audio 6000 RTP/AVP 18 8 0 101\r
a=rtpmap:101 telephone-event/8000\r
a=label:a1\r
a=sendonly\r
m=video 6002 RTP/AVP 96\r
a=label:v1\r
m=audio 6004 RTP/SAVP 0\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abcd\r
a=label:a2\r
m=audio 6006 RTP/AVP 0\r
a=label:a3\r
a=inactive\r
"""


def test_sdp_answer_keeps_m_lines_in_order_echoes_labels_one_codec_port_0():
    offer = sdp.parse(OFFER)
    chosen = [sdp.choose(m) for m in offer.media]
    assert [c.codec for c in chosen] == ["pcma", None, None, "pcmu"]
    ans = sdp.answer(offer, chosen, {0: 40000, 3: 40002}, "198.51.100.7", 5, 1).decode()
    mlines = [ln for ln in ans.split("\r\n") if ln.startswith("m=")]
    assert mlines == ["m=audio 40000 RTP/AVP 8 101", "m=video 0 RTP/AVP 96", "m=audio 0 RTP/SAVP 0",
                      "m=audio 40002 RTP/AVP 0"]
    assert [ln for ln in ans.split("\r\n") if ln.startswith("a=label")] == ["a=label:a1", "a=label:v1", "a=label:a2",
                                                                           "a=label:a3"]
    assert ans.count("a=recvonly") == 1 and ans.count("a=inactive") == 1
    assert chosen[2].reason == "srtp-unsupported"


@pytest.mark.parametrize("bad", [b"", b"x=1\r\n", b"v=0\r\nm=audio port RTP/AVP 0\r\n", b"v=0\r\nc=IN IP4 host\r\n",
                                 b"v=0\r\ns=-\r\n"])
def test_bad_sdp(bad):
    with pytest.raises(sdp.SdpError):
        sdp.parse(bad)


def _msg(ctype: str, body: bytes) -> bytes:
    return (b"INVITE sip:srs@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
            b"To: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: " + ctype.encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_multipart_any_order_with_extra_parts():
    body = (b"--b1\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>\r\n"
            b"--b1\r\nContent-Type: application/x-vendor\r\n\r\nzzz\r\n"
            b"--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b1--\r\n")
    parts = body_parts(parse(_msg('multipart/mixed; boundary="b1"', body)))
    assert parts["application/sdp"] == b"v=0\r\n" and parts["application/rs-metadata+xml"] == b"<recording/>"
    with pytest.raises(SipParseError):
        body_parts(parse(_msg("multipart/mixed;boundary=b1", b"--b1\r\nContent-Type: a/b\r\n\r\nx")))


def test_sip_limits():
    with pytest.raises(SipParseError) as e:
        parse(_msg("application/sdp", b"v" * 70000))
    assert e.value.status == 413
    with pytest.raises(SipParseError):
        parse(b"INVITE sip:x SIP/2.0\r\nVia: x\r\n\r\n")


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def _stream():
    clock = Clock()
    out: list[tuple[float, bytes]] = []
    st = RtpStream(0, 40000, 0, 101, 100.0, lambda t, d: out.append((t, d)), clock=clock)
    return st, out, clock


def test_rtp_reorder_wrap_loss_and_batching():
    st, out, clock = _stream()
    seqs = list(range(65530, 65536)) + list(range(0, 20))
    pkts = [(s, i) for i, s in enumerate(seqs)]
    pkts[3], pkts[4] = pkts[4], pkts[3]  # reordered
    del pkts[10]  # lost (seq 4)
    for s, i in pkts:
        clock.t = 100.0 + i * 0.02
        st.packet(rtp_packet(s, 1000 + i * 160, 7, bytes([i]) * 160), ("127.0.0.1", 7000))
    st.drain()
    data = b"".join(d for _, d in out)
    assert st.stats["lost"] == 1 and st.stats["late"] == 0
    assert [d[0] for d in (data[k:k + 160] for k in range(0, len(data), 160))] == sorted(i for _, i in pkts)
    assert out[0][0] == 0.0
    # the frame after the gap is placed by its RTP timestamp: 20 ms of the lost packet stay a gap
    starts = [t for t, _ in out]
    assert any(abs(t - 0.22) < 1e-6 for t in starts)


def test_rtp_latch_ssrc_change_dtmf_dedup_and_cn():
    st, out, clock = _stream()
    st.packet(rtp_packet(1, 0, 1, b"\xff" * 160), ("127.0.0.1", 7000))
    st.packet(rtp_packet(2, 160, 1, b"\xff" * 160), ("127.0.0.2", 7000))  # another sender: ignored
    assert st.stats["foreign"] == 1
    for _ in range(3):  # the end packet of an RFC 4733 event is sent three times
        st.packet(rtp_packet(3, 320, 1, struct.pack("!BBH", 5, 0x80 | 10, 640), pt=101), ("127.0.0.1", 7000))
    st.packet(rtp_packet(4, 320, 1, b"\x00", pt=13), ("127.0.0.1", 7000))
    clock.t = 101.0
    st.packet(rtp_packet(500, 99999, 2, b"\xff" * 160), ("127.0.0.1", 7000))  # new SSRC (transfer)
    st.drain()
    assert st.stats["ssrc_changes"] == 1 and st.stats["cn"] == 1
    assert [e["event"] for e in st.events] == [5]
    assert [round(t, 3) for t, _ in out] == [0.0, 1.0]
    assert all(len(d) == 160 for _, d in out)  # events and CN never become audio


def test_settings_errors():
    with pytest.raises(SiprecConfigError):
        SiprecSettings.from_mapping({"src": [{"name": "x"}]})
    with pytest.raises(SiprecConfigError):
        SiprecSettings.from_mapping({"src": [{"name": "x", "addresses": ["10.0.0.1"]}], "rtp_ports": [10, 20]})
    with pytest.raises(SiprecConfigError):
        SiprecSettings.from_mapping({"src": [{"name": "x", "addresses": ["10.0.0.1"]}], "transports": ["tls"]})
    s = SiprecSettings.from_mapping({"src": [{"name": "x", "addresses": ["10.0.0.0/24"]}],
                                     "advisors": {"sip:100@pbx.example": "A100", "4711": "A4711"}})
    assert s.src_for("10.0.0.9").name == "x" and s.src_for("10.0.1.1") is None
    assert s.advisor_for("<sip:100@PBX.example;user=phone>") == "A100" and s.advisor_for("sip:4711@cm") == "A4711"


def test_a_busy_recorder_does_not_move_audio_but_a_jump_of_the_sender_clock_does():
    st, out, clock = _stream()
    for i in range(10):
        clock.t = 100.0 + i * 0.02
        st.packet(rtp_packet(i, i * 160, 9, b"\x11" * 160), ("127.0.0.1", 7000))
    clock.t = 104.0  # the loop was blocked for almost 4 s: ten packets arrive at once
    for i in range(10, 20):
        st.packet(rtp_packet(i, i * 160, 9, b"\x11" * 160), ("127.0.0.1", 7000))
    clock.t = 104.5  # the sender's RTP clock jumps by an hour
    st.packet(rtp_packet(20, 20 * 160 + 3600 * 8000, 9, b"\x22" * 160), ("127.0.0.1", 7000))
    st.drain()
    placed = {round(t, 3): len(d) for t, d in out}
    assert st.stats["resyncs"] == 1
    assert round(sum(placed.values()) / 8000, 3) == 0.42
    assert 0.0 in placed and 4.5 in placed  # the first 20 packets by the RTP clock, the jump by arrival
    assert max(t for t in placed if t < 4) + placed[max(t for t in placed if t < 4)] / 8000 == pytest.approx(0.4)
