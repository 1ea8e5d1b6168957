"""Render an Art. 15 report (the dict from ``collect.build_report``) as JSON, HTML or PDF.

Every value that comes from the catalog or the config is escaped: ``html.escape`` for HTML,
XML escaping for ReportLab paragraphs (which parse a small markup language).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from ..errors import InputError
from .texts import human_date, human_time, number, t

FORMATS = ("json", "html", "pdf")


def _access_line(lang: str, a: Mapping[str, Any], tz: str) -> str:
    line = t(lang, "access_line", at=human_time(lang, a["at"], tz), action=a["action_text"], role=", ".join(a["roles"]))
    reads = int(a.get("reads", 1))
    return line + (f" ({t(lang, 'reads', n=number(lang, reads))})" if reads > 1 else "")


def _controller_lines(lang: str, report: Mapping[str, Any]) -> list[str]:
    """Controller, address and DPO contact; a missing one is said to be missing, never left out."""
    ctrl = report["controller"]
    missing = ctrl.get("not_configured") or t(lang, "not_configured")
    return [f"{t(lang, 'controller')}: {ctrl['name'] or missing}",
            f"{t(lang, 'controller_address')}: {ctrl.get('address') or missing}",
            f"{t(lang, 'dpo_contact')}: {ctrl['dpo_contact'] or missing}",
            report.get("time_zone_text", "")]


def _record_rows(lang: str, r: Mapping[str, Any], tz: str = "UTC") -> list[tuple[str, str | list[str]]]:
    """(label, text or lines) of one recording, shared by HTML and PDF."""
    rows: list[tuple[str, str | list[str]]] = [
        (t(lang, "id"), r["id"]),
        (t(lang, "status"), r["status_text"]),
        (t(lang, "recorded"), f"{human_time(lang, r['started_at'], tz)} – {human_time(lang, r['ended_at'], tz)}"),
        (t(lang, "duration"), f"{r['duration_text']} {t(lang, 'seconds')}"),
        (t(lang, "direction"), r["direction_text"]),
        (t(lang, "content"), r["content_text"]),
        (t(lang, "source"), r["source_text"]),
        (t(lang, "purposes"), [f"{p['purpose']} – {p['legal_basis']}" for p in r["purposes"]] or ["-"]),
    ]
    if r["status"] == "deleted":
        rows.append((t(lang, "deleted_at"), human_time(lang, r["deleted_at"], tz)))
        rows.append((t(lang, "deleted_why"), f"{r['reason_text']} ({r['retention'].get('rule_text') or r['retention']['rule']})"))
    else:
        rows.append((t(lang, "retention"), r["retention"]["text"]))
        rows.append((t(lang, "consents"), [c["text"] for c in r["consents"]] or [t(lang, "no_consent")]))
        transcript = r.get("transcript")
        rows.append((t(lang, "transcript"), transcript["text"] if transcript else t(lang, "transcript_none")))
    rows.append((t(lang, "accesses"), [_access_line(lang, a, tz) for a in r["accesses"]] or [t(lang, "no_access")]))
    return rows


def _subject_lines(lang: str, report: Mapping[str, Any]) -> list[str]:
    subj = report["subject"]
    return ([f"{t(lang, 'customer_id')}: {c}" for c in subj["customer_ids"]]
            + [f"{t(lang, 'number')}: {n}" for n in subj["numbers"]])


# ------------------------------------------------------------------------------------ JSON


def render_json(report: Mapping[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------ HTML

_CSS = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; color: #111; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #999; }
table.rec { border-collapse: collapse; width: 100%; margin: 1em 0; }
table.rec th { text-align: left; vertical-align: top; width: 14em; padding: .2em .5em; background: #f2f2f2; }
table.rec td { padding: .2em .5em; vertical-align: top; }
table.rec ul { margin: 0; padding-left: 1.2em; }
code { font-size: .9em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: str | list[str]) -> str:
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in value) + "</ul>"
    return _e(value)


def render_html(report: Mapping[str, Any]) -> bytes:
    lang, tz = report["lang"], report.get("time_zone", "UTC")
    out = [f'<!DOCTYPE html>\n<html lang="{_e(lang)}">\n<head>\n<meta charset="utf-8">\n'
           f"<title>{_e(report['title'])}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
           f"<h1>{_e(report['title'])}</h1>\n",
           f"<p>{_e(t(lang, 'generated'))}: {_e(human_time(lang, report['generated_at'], tz))}</p>\n"]
    out += [f"<p>{_e(line)}</p>\n" for line in _controller_lines(lang, report)]
    out.append(f"<h2>{_e(t(lang, 'subject'))}</h2>\n<ul>"
               + "".join(f"<li>{_e(x)}</li>" for x in _subject_lines(lang, report)) + "</ul>\n")
    out.append(f"<h2>{_e(t(lang, 'summary'))}</h2>\n<p>{_e(report['summary']['text'])}</p>\n"
               f"<p>{_e(t(lang, 'data_categories'))}: {_e(report['data_categories'])}</p>\n")
    for key, items in (("stored", report["recordings"]), ("deleted_section", report["deleted"])):
        if not items:
            continue
        out.append(f"<h2>{_e(t(lang, key))}</h2>\n")
        if key == "deleted_section":
            out.append(f"<p>{_e(report['deleted_note'])}</p>\n")
        for r in items:
            out.append(f'<table class="rec" id="rec-{_e(r["id"])}">\n')
            for label, value in _record_rows(lang, r, tz):
                out.append(f"<tr><th>{_e(label)}</th><td>{_cell(value)}</td></tr>\n")
            out.append("</table>\n")
    out.append(f"<h2>{_e(t(lang, 'recipients'))}</h2>\n<ul>"
               + "".join(f"<li>{_e(x)}</li>" for x in report["recipients"]) + "</ul>\n"
               f"<p>{_e(report['third_country'])}</p>\n<p>{_e(report['automated'])}</p>\n")
    out.append(f"<h2>{_e(t(lang, 'rights'))}</h2>\n<ul>"
               + "".join(f"<li>{_e(x)}</li>" for x in report["rights"]) + "</ul>\n"
               f"<p>{_e(report['copy'])}</p>\n")
    if report["previous_reports"]:
        out.append(f"<p>{_e(t(lang, 'previous'))}: "
                   + _e(", ".join(human_date(lang, x, tz) for x in report["previous_reports"])) + "</p>\n")
    out.append("</body>\n</html>\n")
    return "".join(out).encode("utf-8")


# ------------------------------------------------------------------------------------ PDF


def render_pdf(report: Mapping[str, Any]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    lang, tz = report["lang"], report.get("time_zone", "UTC")
    styles = getSampleStyleSheet()
    body = ParagraphStyle("cf-body", parent=styles["BodyText"], fontName="Helvetica", fontSize=9, leading=11.5)
    label = ParagraphStyle("cf-label", parent=body, fontName="Helvetica-Bold")
    mono = ParagraphStyle("cf-mono", parent=body, fontName="Courier", fontSize=8.5)
    h1 = ParagraphStyle("cf-h1", parent=styles["Heading1"], fontName="Helvetica-Bold", fontSize=15)
    h2 = ParagraphStyle("cf-h2", parent=styles["Heading2"], fontName="Helvetica-Bold", fontSize=12)

    def p(text: Any, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(xml_escape(str(text)), style)

    def cell(value: str | list[str], style: ParagraphStyle = body) -> Any:
        if isinstance(value, list):
            return [p("• " + v, style) for v in value]
        return p(value, style)

    story: list[Any] = [p(report["title"], h1),
                        p(f"{t(lang, 'generated')}: {human_time(lang, report['generated_at'], tz)}")]
    ctrl = report["controller"]
    story += [p(line) for line in _controller_lines(lang, report)]
    story += [p(t(lang, "subject"), h2)] + [p(x) for x in _subject_lines(lang, report)]
    story += [p(t(lang, "summary"), h2), p(report["summary"]["text"]),
              p(f"{t(lang, 'data_categories')}: {report['data_categories']}")]
    style = TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eeeeee")),
                        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#999999")),
                        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)])
    for key, items in (("stored", report["recordings"]), ("deleted_section", report["deleted"])):
        if not items:
            continue
        story.append(p(t(lang, key), h2))
        if key == "deleted_section":
            story.append(p(report["deleted_note"]))
        for r in items:
            rows = [[p(lbl, label), cell(val, mono if i == 0 else body)]
                    for i, (lbl, val) in enumerate(_record_rows(lang, r, tz))]
            table = Table(rows, colWidths=[38 * mm, 132 * mm], style=style)
            story += [Spacer(1, 4 * mm), KeepTogether([table]) if len(rows) < 14 else table]
    story += [p(t(lang, "recipients"), h2)] + [p("• " + x) for x in report["recipients"]]
    story += [p(report["third_country"]), p(report["automated"])]
    story += [p(t(lang, "rights"), h2)] + [p("• " + x) for x in report["rights"]] + [Spacer(1, 2 * mm),
                                                                                      p(report["copy"])]
    if report["previous_reports"]:
        story.append(p(f"{t(lang, 'previous')}: " + ", ".join(human_date(lang, x, tz) for x in report["previous_reports"])))

    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        """Holds the pages back until the end so each footer can say "page N of M"."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (ReportLab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.saveState()
                self.setFont("Helvetica", 7.5)
                self.drawString(20 * mm, 10 * mm, f"{report['title']} – "
                                + t(lang, "page_of", page=number(lang, self._pageNumber), total=number(lang, total)))
                self.restoreState()
                super().showPage()
            super().save()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=report["title"], author=ctrl["name"] or "CallFort",
                            subject="Art. 15 GDPR", creator="CallFort")
    doc.build(story, canvasmaker=NumberedCanvas)
    return buf.getvalue()


def render(report: Mapping[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "pdf":
        return render_pdf(report)
    raise InputError(f"format {fmt!r} is not available", hint="choose one of: " + ", ".join(FORMATS))
