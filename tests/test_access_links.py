"""Streaming links through a real server: signed, short-lived, bound; HTTP Range; audited playback."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import httpx
import pytest
from access_helpers import NOW, PASSWORD, last_audit, make_user, world_for

from cfcore.access import links
from cfcore.archive import export_wav

REFUSED = {"error": links.LINK_REFUSED}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with world_for(tmp_path_factory.mktemp("links")) as w:
        yield w


@pytest.fixture(autouse=True)
def _reset_clock(world):
    world.clock.set(NOW)
    yield
    world.clock.set(NOW)


@pytest.fixture(scope="module")
def exported(world):
    """The advisor's recording as ``cf export`` writes it: the reference bytes."""
    out = world.tmp / "reference.wav"
    export_wav(world.app, world.rec_own, out)
    return out.read_bytes()


def new_link(world, user="u-advisor", rec=None, **body):
    with world.http(user) as c:
        r = c.post(f"/api/recordings/{rec or world.rec_own}/link", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def get(world, url, user="u-advisor", headers=None, method="GET"):
    with world.http(user) as c:
        return c.request(method, url, headers=headers or {})


def test_whole_file_equals_export(world, exported):
    link = new_link(world)
    assert link["url"].startswith(f"/api/stream/{world.rec_own}?t=v1.")
    assert link["expires_at"] == (NOW + timedelta(minutes=5)).isoformat()
    r = get(world, link["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.headers["accept-ranges"] == "bytes" and r.headers["cache-control"] == "no-store"
    assert int(r.headers["content-length"]) == len(exported)
    assert r.content == exported and exported[:4] == b"RIFF"


def test_byte_ranges_and_seeking(world, exported):
    url = new_link(world)["url"]
    size = len(exported)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=44-1043": (44, 1043),
        f"bytes={size // 2}-": (size // 2, size - 1),
        "bytes=-500": (size - 500, size - 1),
        f"bytes=10-{size + 1000}": (10, size - 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    for header, (first, last) in cases.items():
        r = get(world, url, headers={"Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert int(r.headers["content-length"]) == last - first + 1
        assert r.content == exported[first:last + 1], header
    # a player seeking through the file in odd-sized pieces reassembles it exactly
    pieces, pos, step = [], 0, 7919
    while pos < size:
        r = get(world, url, headers={"Range": f"bytes={pos}-{pos + step - 1}"})
        assert r.status_code == 206
        pieces.append(r.content)
        pos += step
    assert b"".join(pieces) == exported
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        r = get(world, url, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{size}"
    # malformed or multi-range: the whole file (RFC 9110 allows ignoring Range)
    for header in ("bytes=5-2", "items=0-1", "bytes=0-1,5-6"):
        r = get(world, url, headers={"Range": header})
        assert r.status_code == 200 and r.content == exported
    head = get(world, url, method="HEAD", headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""


def test_each_playback_is_audited(world):
    url = new_link(world)["url"]
    get(world, url, headers={"Range": "bytes=100-199", "X-Client-Host": "ws-0815"})
    e = last_audit(world.app, action="recording.play", user="u-advisor", outcome="ok")
    assert (e.host, e.ip, e.function, e.target_id) == ("ws-0815", "127.0.0.1", "api.stream", world.rec_own)
    assert e.detail["range"] == "bytes=100-199" and e.detail["status"] == 206 and e.detail["bytes"] == 100
    created = last_audit(world.app, action="link.create", user="u-advisor")
    assert created.detail["link"] == e.detail["link"] and created.function == "api.recordings.link"
    assert created.host == "pc-u-advisor" and "token" not in json.dumps(dict(created.detail))


def _refused(world, url, user="u-advisor"):
    r = get(world, url, user=user)
    assert r.status_code == 403 and r.json() == REFUSED, r.text
    return r


def _swap_payload(token, **changes):
    version, payload, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    new = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{version}.{new}.{mac}"


def test_expired_link(world):
    link = new_link(world)
    world.clock.advance(timedelta(minutes=5))
    _refused(world, link["url"])
    e = last_audit(world.app, action="recording.play", outcome="denied")
    assert e.detail["reason"] == "expired" and e.user == "u-advisor" and e.host == "pc-u-advisor"


def test_link_valid_until_its_last_second(world):
    link = new_link(world)
    world.clock.advance(timedelta(minutes=4, seconds=59))
    assert get(world, link["url"], headers={"Range": "bytes=0-0"}).status_code == 206


def test_forged_and_altered_links(world):
    link = new_link(world)
    token = link["token"]
    version, payload, mac = token.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    forged_mac = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    for bad in (
        f"{version}.{payload}.{flipped}",  # altered signature
        f"{version}.{payload}.{forged_mac}",  # forged signature
        _swap_payload(token, e=int((NOW + timedelta(days=1)).timestamp())),  # lifetime extended
        _swap_payload(token, u="f" * 32),  # another user put in
        "v1.e30.AAAA", "garbage", "",
    ):
        _refused(world, f"/api/stream/{world.rec_own}?t={bad}")
        assert last_audit(world.app, action="recording.play", outcome="denied").detail["reason"] == \
            "bad signature or malformed"


def test_another_users_link(world):
    link = new_link(world)  # u-advisor's
    _refused(world, link["url"], user="u-advisor2")
    e = last_audit(world.app, action="recording.play", outcome="denied")
    assert e.user == "u-advisor2" and e.detail["reason"] == "another user's link"


def test_another_recordings_link_and_no_such_recording(world):
    link = new_link(world)
    _refused(world, f"/api/stream/{world.rec_other}?t={link['token']}")
    assert last_audit(world.app, action="recording.play", outcome="denied").detail["reason"] == \
        "another recording's link"
    ghost = secrets.token_hex(16)
    claims = links.LinkClaims(user_id=links.parse(world.app, link["token"]).user_id, recording_id=ghost,
                              expires_at=NOW + timedelta(minutes=5))
    ghost_link = links.sign(world.app, claims)  # a valid link to a recording that does not exist
    a = _refused(world, f"/api/stream/{ghost}?t={ghost_link}")
    b = _refused(world, f"/api/stream/{ghost}?t={link['token']}")
    c = _refused(world, f"/api/stream/not-an-id?t={link['token']}")
    assert a.content == b.content == c.content


def test_ip_bound_link(world, exported):
    link = new_link(world, bind_ip=True)
    assert link["ip_bound"] and links.parse(world.app, link["token"]).ip == "127.0.0.1"
    assert get(world, link["url"], headers={"Range": "bytes=0-3"}).content == b"RIFF"
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=world.server.base, transport=transport, timeout=30,
                      headers={"Authorization": f"Bearer {world.tokens['u-advisor']}"}) as c:
        r = c.get(link["url"])
    assert r.status_code == 403 and r.json() == REFUSED
    assert last_audit(world.app, action="recording.play", outcome="denied").ip == "127.0.0.2"


def test_stream_needs_login(world):
    link = new_link(world)
    with httpx.Client(base_url=world.server.base, timeout=30) as c:
        r = c.get(link["url"])
    assert r.status_code == 401 and "not logged in" in r.json()["error"]


def test_link_for_another_advisors_call_needs_four_eyes(world, exported):
    with world.http("u-advisor") as c:
        r = c.post(f"/api/recordings/{world.rec_other}/link")
    assert r.status_code == 403 and "four-eyes" in r.json()["error"]  # advisor: a colleague's call needs four-eyes
    with world.http("u-supervisor") as c:
        r = c.post(f"/api/recordings/{world.rec_own}/link")
        assert r.status_code == 403 and "four-eyes" in r.json()["error"]
        req = c.post("/api/approvals", json={"action": "recording.play", "target": world.rec_own,
                                             "reason": "coaching session 12"})
        assert req.status_code == 201, req.text
        aid = req.json()["id"]
    with world.http("u-compliance") as c:
        assert c.post(f"/api/approvals/{aid}/approve").json()["state"] == "approved"
    with world.http("u-supervisor") as c:
        run = c.post(f"/api/approvals/{aid}/execute")
        assert run.status_code == 200, run.text
        url = run.json()["result"]["url"]
        again = c.post(f"/api/approvals/{aid}/execute")
        assert again.status_code == 409
    r = get(world, url, user="u-supervisor")
    assert r.status_code == 200 and r.content == exported
    e = last_audit(world.app, action="recording.play", user="u-supervisor", outcome="ok")
    assert e.function == "api.stream" and e.host == "pc-u-supervisor"
    entry = [x for x in world.app.audit.entries(0, user="u-supervisor") if x.action == "recording.play"][-1]
    assert entry.seq == e.seq
    _refused(world, url, user="u-advisor")  # the supervisor's link is theirs alone


def test_approved_export_is_a_download_link(world, exported):
    with world.http("u-compliance") as c:
        aid = c.post("/api/approvals", json={"action": "recording.export", "target": world.rec_own,
                                             "reason": "BaFin request 2026-17"}).json()["id"]
    with world.http("u-dpo") as c:
        assert c.post(f"/api/approvals/{aid}/approve").status_code == 200
    with world.http("u-compliance") as c:
        result = c.post(f"/api/approvals/{aid}/execute").json()["result"]
    assert result["purpose"] == "export"
    r = get(world, result["url"], user="u-compliance")
    assert r.status_code == 200 and r.content == exported
    assert r.headers["content-disposition"] == f'attachment; filename="{world.rec_own}.wav"'
    e = last_audit(world.app, action="recording.export", user="u-compliance", outcome="ok")
    assert e.function == "api.stream" and e.detail["purpose"] == "export"


def test_nothing_in_clear_is_written(world, exported):
    before = {p: p.stat().st_size for p in world.tmp.rglob("*") if p.is_file()}
    url = new_link(world)["url"]
    assert get(world, url).content == exported
    after = {p: p.stat().st_size for p in world.tmp.rglob("*") if p.is_file()}
    assert set(after) == set(before)
    pcm = exported[1000:1064]
    for p in after:
        if "catalog" not in p.name:
            assert pcm not in p.read_bytes() or p.name == "reference.wav", p


def test_links_without_login_when_configured(tmp_path):
    extra = "\n[access]\nlink_require_login = false\nlink_bind_ip = true\n"
    with world_for(tmp_path, extra) as w:
        link = new_link(w)
        assert link["ip_bound"]
        with httpx.Client(base_url=w.server.base, timeout=30, headers={"X-Client-Host": "crm-7"}) as c:
            r = c.get(link["url"], headers={"Range": "bytes=0-3"})
        assert r.status_code == 206 and r.content == b"RIFF"
        e = last_audit(w.app, action="recording.play", outcome="ok")
        assert e.user == "u-advisor" and e.host == "crm-7"
        make_user(w.app, "gone", ["advisor"], advisor_id="A1", password=PASSWORD)
        from access_helpers import login

        token = login(w.server, "gone")
        with httpx.Client(base_url=w.server.base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
            gone_link = c.post(f"/api/recordings/{w.rec_own}/link").json()
        from access_helpers import ctx_for

        from cfcore.access import users

        users.set_disabled(w.app, ctx_for(w.app, "u-administrator"), "gone", True)
        with httpx.Client(base_url=w.server.base, timeout=30) as c:
            r = c.get(gone_link["url"])
        assert r.status_code == 403 and r.json() == REFUSED


def test_link_tokens_never_reach_the_access_log(world):
    import io
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("uvicorn.access")  # the server's access logger (filter installed by create_app)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token = new_link(world)["token"]
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/api/stream/{world.rec_own}?t={token}",
                    "1.1", 200)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    line = stream.getvalue()
    assert f"/api/stream/{world.rec_own}?t=***" in line and token not in line


def test_link_secret_is_a_private_key_file(world):
    import stat

    new_link(world)
    path = world.app.keys_dir / links.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(bytes.fromhex(path.read_text().strip())) == 32


def test_range_with_thousands_of_digits_is_answered_and_audited(world, exported):
    """Attack: a Range header with thousands of digits made int() raise (500, no audit entry)."""
    url = new_link(world)["url"]
    size = len(exported)
    huge = "9" * 5000
    r = get(world, url, headers={"Range": f"bytes={huge}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    e = last_audit(world.app, action="recording.play", user="u-advisor")
    assert e.outcome == "refused" and e.detail["status"] == 416 and len(e.detail["range"]) == 100
    r = get(world, url, headers={"Range": f"bytes=0-{huge}"})
    assert r.status_code == 206 and r.content == exported
    r = get(world, url, headers={"Range": f"bytes=-{huge}"})
    assert r.status_code == 206 and r.content == exported
    r = get(world, url, headers={"Range": f"bytes={'0' * 4000}10-19"})
    assert r.status_code == 206 and r.content == exported[10:20]
    assert last_audit(world.app, action="recording.play", user="u-advisor").detail["status"] == 206


def test_link_minted_for_longer_than_the_ttl_is_refused(world):
    """Attack: a link signed by a process whose clock was set years ahead (the old CF_NOW trick)
    would live for years; a link may not live longer than link_ttl_seconds from now."""
    from access_helpers import ctx_for

    world.clock.set(NOW + timedelta(days=3650))
    link = links.issue(world.app, ctx_for(world.app, "u-advisor"), world.rec_own)
    world.clock.set(NOW)
    _refused(world, link["url"])
    e = last_audit(world.app, action="recording.play", outcome="denied")
    assert e.detail["reason"] == "lifetime beyond link_ttl_seconds"
    # a link asked for longer than the configured lifetime is not minted at all
    from cfcore.errors import InputError

    with pytest.raises(InputError, match="at most link_ttl_seconds"):
        links.issue(world.app, ctx_for(world.app, "u-advisor"), world.rec_own, ttl_seconds=301)
