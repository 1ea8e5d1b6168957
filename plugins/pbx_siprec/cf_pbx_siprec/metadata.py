"""Recording metadata (RFC 7865) from every dialect: label -> stream -> participant.

Parsed with lxml with entity resolution, DTDs and network access off; a DOCTYPE or an entity
declaration is refused outright. Elements are matched by local name, so the RFC namespace
(``urn:ietf:params:xml:ns:recording:1``), its draft predecessors and vendor namespaces all work:

- RFC 7865: ``participant`` (``nameID aor``), ``stream`` (``label``), ``participantstreamassoc``
  (``send``/``recv`` stream ids); ``dataMode`` ``complete`` replaces, ``partial`` merges.
- Draft style (Oracle/Acme, BroadWorks): ``send``/``recv`` directly inside ``participant``.
- Vendor data: Avaya UCID (``ucid`` in any namespace, or the ``User-to-User`` header), Oracle
  ``apkt:ucid``/``apkt:callerOrig``, BroadWorks ``extTrackingID``, Sonus/Ribbon ``callId``.
- OpenSIPS: no ``stream`` elements: participants in document order map to the m-lines labelled
  0, 1, … (or to the m-lines in order).
"""

from __future__ import annotations

import re

import attrs
from lxml import etree

MAX_XML = 65536
VENDOR_KEYS = ("ucid", "extTrackingID", "callerOrig", "callId", "sipSessionID")


class MetadataError(ValueError):
    """The metadata is not well-formed or not safe to parse (answered 400)."""


@attrs.define
class Participant:
    id: str
    aors: list[str] = attrs.Factory(list)
    name: str | None = None
    send: list[str] = attrs.Factory(list)  # stream ids
    recv: list[str] = attrs.Factory(list)


@attrs.define
class Metadata:
    participants: dict[str, Participant] = attrs.Factory(dict)
    streams: dict[str, str] = attrs.Factory(dict)  # stream id -> label
    vendor: dict[str, str] = attrs.Factory(dict)
    session_ids: list[str] = attrs.Factory(list)
    complete: bool = True
    order: list[str] = attrs.Factory(list)  # participant ids in document order

    def merge(self, other: Metadata) -> Metadata:
        """``complete`` replaces; ``partial`` merges by id."""
        if other.complete:
            return other
        merged = Metadata(participants=dict(self.participants), streams={**self.streams, **other.streams},
                          vendor={**self.vendor, **other.vendor}, session_ids=self.session_ids or other.session_ids,
                          complete=True, order=list(self.order))
        for pid, p in other.participants.items():
            old = merged.participants.get(pid)
            if old is None:
                merged.participants[pid] = p
                merged.order.append(pid)
            else:
                merged.participants[pid] = Participant(id=pid, aors=p.aors or old.aors, name=p.name or old.name,
                                                       send=p.send or old.send, recv=p.recv or old.recv)
        return merged

    def participant_for_label(self, label: str | None, index: int) -> Participant | None:
        """The participant that sends the stream with this label (or on the m-line ``index``)."""
        if label is not None:
            for sid, lab in self.streams.items():
                if lab == label:
                    for p in self.participants.values():
                        if sid in p.send:
                            return p
        if not any(p.send for p in self.participants.values()):
            # OpenSIPS style: no streams: participants in order map to labels 0, 1, … / m-lines
            idx = index
            if label is not None and label.isdigit():
                idx = int(label)
            if 0 <= idx < len(self.order):
                return self.participants[self.order[idx]]
        return None


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _attr(el: etree._Element, *names: str) -> str | None:
    for k, v in el.attrib.items():
        if etree.QName(k).localname in names:
            return str(v)
    return None


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)


def parse(raw: bytes) -> Metadata:
    if len(raw) > MAX_XML:
        raise MetadataError("metadata larger than 64 KiB")
    if re.search(rb"<!(DOCTYPE|ENTITY)", raw, re.I):
        raise MetadataError("metadata with a DOCTYPE or entity declaration is refused")
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"metadata is not well-formed XML: {str(exc)[:100]}") from None
    if _local(root.tag) != "recording":
        raise MetadataError("metadata root is not <recording>")
    md = Metadata()
    for el in root.iter():
        name = _local(el.tag)
        if name == "dataMode" or name == "datamode":
            md.complete = (el.text or "").strip().lower() != "partial"
        elif name == "participant":
            pid = _attr(el, "participant_id", "id") or f"p{len(md.order)}"
            p = Participant(id=pid)
            for sub in el.iter():
                sn = _local(sub.tag)
                if sn in ("nameID", "nameId", "aor"):
                    aor = _attr(sub, "aor") or (sub.text or "").strip()
                    if aor:
                        p.aors.append(aor[:256])
                elif sn == "name" and sub.text:
                    p.name = sub.text.strip()[:128]
                elif sn == "send" and sub.text:
                    p.send.append(sub.text.strip())
                elif sn == "recv" and sub.text:
                    p.recv.append(sub.text.strip())
            if pid not in md.participants:
                md.order.append(pid)
            md.participants[pid] = p
        elif name == "stream":
            sid = _attr(el, "stream_id", "id")
            label = next((c.text.strip() for c in el if _local(c.tag) == "label" and c.text), None)
            if sid and label is not None:
                md.streams[sid] = label[:64]
        elif name == "participantstreamassoc":
            apid = _attr(el, "participant_id")
            ap = md.participants.get(apid or "")
            if ap is None and apid:
                ap = md.participants[apid] = Participant(id=apid)
                md.order.append(apid)
            if ap is not None:
                for c in el:
                    if _local(c.tag) == "send" and c.text:
                        ap.send.append(c.text.strip())
                    elif _local(c.tag) == "recv" and c.text:
                        ap.recv.append(c.text.strip())
        elif name == "session":
            sid = _attr(el, "session_id")
            if sid:
                md.session_ids.append(sid[:128])
        if name in VENDOR_KEYS and el.text and el.text.strip():
            md.vendor.setdefault(name, el.text.strip()[:128])
    # a participant element may also carry an AoR-less placeholder (Avaya SBCE's dummy participant)
    return md


def ucid_from_uui(value: str | None) -> str | None:
    """Avaya UCID from a ``User-to-User`` header: hex UUI (protocol discriminator 0x00 or 0x04),
    information element 0xFA of 8 bytes = network node (2), sequence (2), timestamp (4), shown as
    Avaya does: 20 decimal digits (5 + 5 + 10)."""
    if not value:
        return None
    hexpart = value.split(";", 1)[0].strip().strip('"')
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){3,128}", hexpart):
        return None
    data = bytes.fromhex(hexpart)
    i = 1 if data[0] in (0x00, 0x04) else 0
    while i + 2 <= len(data):
        ie, ln = data[i], data[i + 1]
        val = data[i + 2:i + 2 + ln]
        if ie == 0xFA and len(val) >= 8:
            node, seq, ts = int.from_bytes(val[0:2], "big"), int.from_bytes(val[2:4], "big"), int.from_bytes(
                val[4:8], "big")
            return f"{node:05d}{seq:05d}{ts:010d}"
        i += 2 + ln
    return None
