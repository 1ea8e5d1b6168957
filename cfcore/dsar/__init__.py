"""Art. 15 GDPR reports: everything CallFort holds or held about one person.

``produce_report`` checks access (``dsar.report``), builds the report from the catalog by
pseudonym (stored recordings and tombstones of deleted ones), renders it (JSON, HTML, PDF; German
or English) and audits ``dsar.report``. Copies of the recordings themselves (MiFID II Art. 16(7),
GDPR Art. 15(3)) come out only through the four-eyes action ``dsar.export`` (``export.py``).
See docs/dsar.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hookspecs.types import RequestContext

from ..errors import InputError
from .collect import build_report, check_lang, report_ids, subject_pseudonyms, subject_target
from .files import write_private
from .render import FORMATS, render

if TYPE_CHECKING:
    from ..app import App


def produce_report(app: App, ctx: RequestContext, *, customer_ids: Iterable[str] = (), numbers: Iterable[str] = (),
                   fmt: str = "pdf", lang: str = "de") -> tuple[bytes, dict[str, Any]]:
    """The rendered report and its data. Audited ``dsar.report`` (target: the person's pseudonym)."""
    from ..access.guard import authorize

    if fmt not in FORMATS:
        raise InputError(f"format {fmt!r} is not available", hint="choose one of: " + ", ".join(FORMATS))
    check_lang(lang)
    customer_ids, numbers = list(customer_ids), list(numbers)
    pseudonyms = subject_pseudonyms(app, customer_ids, numbers)
    authorize(app, ctx, "dsar.report", subject_target(pseudonyms))
    report = build_report(app, pseudonyms, lang=lang, customer_ids=customer_ids, numbers=numbers)
    data = render(report, fmt)
    app.audit.record(ctx, "dsar.report", "subject", pseudonyms[0], "ok", {
        "format": fmt, "lang": lang, "stored": report["summary"]["stored"], "deleted": report["summary"]["deleted"],
        "recordings": report_ids(report), "pseudonyms": pseudonyms, "sha256": hashlib.sha256(data).hexdigest()})
    return data, report



__all__ = ["FORMATS", "build_report", "produce_report", "render", "write_private"]
