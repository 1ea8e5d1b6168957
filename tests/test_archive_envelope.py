"""The encrypted object format: round trips, random access, and every kind of tampering."""

import os

import pytest

from cfcore.crypto import envelope
from cfcore.crypto.envelope import Header, Reader, SegmentWriter, decrypt, encrypt, new_data_key
from cfcore.errors import IntegrityError

RID = "0" * 12 + "ab" * 10
SEG = 64


def _fetcher(blob):
    return lambda a, b: blob[a:b]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5])
def test_round_trip_and_sizes(size):
    key = new_data_key()
    plain = os.urandom(size)
    blob = encrypt(key, RID, "advisor", plain, segment_size=SEG)
    assert len(blob) == envelope.ciphertext_size(size, SEG, Header(recording_id=RID, channel="advisor").size)
    assert decrypt(key, RID, "advisor", blob) == plain
    assert len(plain) < 16 or plain not in blob  # short inputs can occur in random bytes by chance


def test_random_access_every_range():
    key = new_data_key()
    plain = os.urandom(5 * SEG + 7)
    blob = encrypt(key, RID, "customer", plain, segment_size=SEG)
    fetched = []

    def fetch(a, b):
        fetched.append((a, b))
        return blob[a:b]

    r = Reader(key, RID, "customer", fetch, len(blob))
    assert r.plain_size == len(plain)
    for start in range(0, len(plain) + 3, 13):
        for end in (start, start + 1, start + SEG, start + 3 * SEG, None):
            assert r.read(start, end) == plain[start:end]
    fetched.clear()
    r.read(2 * SEG + 1, 2 * SEG + 3)  # inside segment 2: only that segment is fetched
    (a, b), = fetched
    assert b - a == SEG + envelope.TAG_SIZE


def test_segment_writer_streams_the_same_format():
    key = new_data_key()
    plain = os.urandom(4 * SEG + 3)
    out = []
    w = SegmentWriter(key, RID, "advisor", out.append, segment_size=SEG)
    for i in range(0, len(plain), 17):
        w.write(plain[i:i + 17])
    assert w.plain_size == len(plain)
    w.close()
    blob = b"".join(out)
    assert decrypt(key, RID, "advisor", blob) == plain
    # a writer that crashed before close: complete segments are recoverable, nothing is "last"
    out2 = []
    w2 = SegmentWriter(key, RID, "advisor", out2.append, segment_size=SEG)
    w2.write(plain)
    crashed = b"".join(out2)
    with pytest.raises(IntegrityError):
        decrypt(key, RID, "advisor", crashed)
    assert envelope.recover_unterminated(key, RID, "advisor", crashed) == plain[:4 * SEG]


def _blob(n_segments=4, channel="advisor", key=None, rid=RID):
    key = key or new_data_key()
    plain = os.urandom(n_segments * SEG - 10)
    return key, plain, encrypt(key, rid, channel, plain, segment_size=SEG)


def test_every_flipped_byte_is_detected():
    key, plain, blob = _blob(3)
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            decrypt(key, RID, "advisor", bytes(bad))


def test_truncation_reorder_drop_and_append_are_detected():
    key, plain, blob = _blob(4)
    h = Header.parse(blob).size
    stride = SEG + envelope.TAG_SIZE
    segs = [blob[h + i * stride:h + (i + 1) * stride] for i in range(4)]
    head = blob[:h]
    cases = {
        "truncated at a segment boundary": head + b"".join(segs[:3]),
        "truncated inside a segment": blob[:-5],
        "truncated to the header": head,
        "segments reordered": head + segs[1] + segs[0] + segs[2] + segs[3],
        "middle segment dropped": head + segs[0] + segs[2] + segs[3],
        "segment duplicated": head + segs[0] + segs[0] + segs[1] + segs[2] + segs[3],
        "garbage appended": blob + b"\0" * 20,
    }
    for name, bad in cases.items():
        with pytest.raises(IntegrityError):
            decrypt(key, RID, "advisor", bad)
            pytest.fail(name)


def test_swapped_objects_are_detected():
    key = new_data_key()
    plain = os.urandom(100)
    advisor = encrypt(key, RID, "advisor", plain, segment_size=SEG)
    # the customer object of the same recording (same key) put in place of the advisor's
    customer = encrypt(key, RID, "customer", plain, segment_size=SEG)
    with pytest.raises(IntegrityError, match="belongs to"):
        decrypt(key, RID, "advisor", customer)
    # a header rewritten to claim the other channel: the AAD no longer matches
    forged = Header.parse(customer)
    forged_hb = Header(recording_id=RID, channel="advisor", segment_size=SEG, nonce_prefix=forged.nonce_prefix).to_bytes()
    with pytest.raises(IntegrityError):
        decrypt(key, RID, "advisor", forged_hb + customer[forged.size:])
    # another recording's object
    other = "1" * 32
    with pytest.raises(IntegrityError):
        decrypt(key, other, "advisor", advisor)
    # wrong key
    with pytest.raises(IntegrityError):
        decrypt(new_data_key(), RID, "advisor", advisor)


def test_header_garbage_is_an_integrity_error_not_a_crash():
    for bad in (b"", b"XXXX" + bytes(40), b"CFAE\x02" + bytes(40), os.urandom(10)):
        with pytest.raises(IntegrityError):
            decrypt(new_data_key(), RID, "advisor", bad)


def test_nonces_differ_between_objects_of_one_key():
    key = new_data_key()
    a = Header.parse(encrypt(key, RID, "advisor", b"x"))
    b = Header.parse(encrypt(key, RID, "customer", b"x"))
    assert a.nonce_prefix != b.nonce_prefix
