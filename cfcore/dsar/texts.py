"""The words of the Art. 15 report, in German and English.

Keys are stable identifiers; ``t(lang, key)`` returns the text. Purposes and legal bases of the
built-in retention rules are known here by the rule's prefix (``mifid-``, ``advisor-only-``,
``consent-``); a plugin's own rule is shown with the texts it returns.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

LANGS = ("de", "en")

TEXTS: dict[str, dict[str, str]] = {
    "title": {"de": "Auskunft nach Art. 15 DSGVO über Gesprächsaufzeichnungen",
              "en": "Access report under Art. 15 GDPR on call recordings"},
    "generated": {"de": "Erstellt am", "en": "Generated on"},
    "controller": {"de": "Verantwortlicher", "en": "Controller"},
    "dpo_contact": {"de": "Datenschutzbeauftragte/r", "en": "Data protection officer"},
    "controller_address": {"de": "Anschrift", "en": "Address"},
    "not_configured": {"de": "nicht angegeben – bitte vor dem Versand ergänzen",
                       "en": "not stated – please complete before sending"},
    "time_zone_note": {"de": "Alle Zeitangaben in der Zeitzone {tz}.", "en": "All times are in the {tz} time zone."},
    "page_of": {"de": "Seite {page} von {total}", "en": "Page {page} of {total}"},
    "reads": {"de": "{n} Lesezugriffe", "en": "{n} reads"},
    "subject": {"de": "Betroffene Person", "en": "Data subject"},
    "customer_id": {"de": "Kundennummer", "en": "Customer id"},
    "number": {"de": "Rufnummer", "en": "Phone number"},
    "summary": {"de": "Zusammenfassung", "en": "Summary"},
    "summary_text": {
        "de": "Wir verarbeiten {live} Aufzeichnung(en) von Telefongesprächen mit Ihnen; {deleted} weitere "
              "Aufzeichnung(en) wurden bereits gelöscht.",
        "en": "We process {live} recording(s) of telephone calls with you; {deleted} further recording(s) "
              "have been deleted already."},
    "none_found": {"de": "Zu den angegebenen Kennungen sind keine Aufzeichnungen gespeichert oder gespeichert gewesen.",
                   "en": "No recordings are or were stored for the identifiers given."},
    "stored": {"de": "Gespeicherte Aufzeichnungen", "en": "Stored recordings"},
    "deleted_section": {"de": "Gelöschte Aufzeichnungen", "en": "Deleted recordings"},
    "recording": {"de": "Aufzeichnung", "en": "Recording"},
    "status": {"de": "Status", "en": "Status"},
    "status_stored": {"de": "gespeichert", "en": "stored"},
    "status_deleted": {"de": "gelöscht", "en": "deleted"},
    "status_deleting": {"de": "wird gelöscht", "en": "being deleted"},
    "recorded": {"de": "Aufgezeichnet", "en": "Recorded"},
    "until": {"de": "bis", "en": "until"},
    "duration": {"de": "Dauer", "en": "Duration"},
    "seconds": {"de": "Sekunden", "en": "seconds"},
    "direction": {"de": "Richtung", "en": "Direction"},
    "dir_in": {"de": "eingehender Anruf", "en": "incoming call"},
    "dir_out": {"de": "ausgehender Anruf", "en": "outgoing call"},
    "dir_internal": {"de": "interner Anruf", "en": "internal call"},
    "content": {"de": "Inhalt", "en": "Content"},
    "two_sided": {"de": "Stimmen von Berater/in und Ihnen (nach Ihrer Information und Einwilligung)",
                  "en": "voices of the advisor and yourself (after you were informed and agreed)"},
    "advisor_only": {"de": "nur die Stimme der Beraterin / des Beraters; Ihre Stimme wurde nicht aufgezeichnet",
                     "en": "the advisor's voice only; your voice was not recorded"},
    "data_categories": {"de": "Datenkategorien", "en": "Categories of data"},
    "transcript": {"de": "Verschriftung", "en": "Transcript"},
    "transcript_yes": {"de": "maschinelle Verschriftung des Gesprächs (Sprache: {language}, erstellt {at}), "
                             "verschlüsselt wie die Aufzeichnung; eine Kopie erhalten Sie mit der Kopie der Aufzeichnung",
                       "en": "machine transcript of the call (language: {language}, made {at}), encrypted like the "
                             "recording; you receive a copy with the copy of the recording"},
    "transcript_none": {"de": "keine", "en": "none"},
    "categories_text": {
        "de": "Tonaufzeichnung (verschlüsselt), Zeitpunkt und Dauer, Richtung, Standort, Kundennummer und "
              "Rufnummer (nur pseudonymisiert gespeichert), Einwilligungszeitpunkt, maschinelle Verschriftung "
              "(verschlüsselt)",
        "en": "audio recording (encrypted), time and length, direction, site, customer id and phone number "
              "(stored pseudonymised only), time of consent, machine transcript (encrypted)"},
    "purposes": {"de": "Zwecke und Rechtsgrundlagen", "en": "Purposes and legal bases"},
    "retention": {"de": "Speicherdauer", "en": "Retention"},
    "retention_until": {"de": "gespeichert bis {date} ({rule})", "en": "kept until {date} ({rule})"},
    "retention_none": {"de": "keine Frist festgelegt", "en": "no period set"},
    "legal_hold": {"de": "Aufbewahrung wegen eines Rechtsstreits oder einer Prüfung (Löschung ausgesetzt, "
                          "Art. 17 Abs. 3 lit. e DSGVO)",
                   "en": "kept for legal claims or an investigation (deletion suspended, Art. 17(3)(e) GDPR)"},
    "consents": {"de": "Einwilligungen", "en": "Consents"},
    "consent_line": {"de": "Zwei-Seiten-Aufzeichnung nach Information begonnen am {at} (über {method})",
                     "en": "two-sided recording started after information on {at} (via {method})"},
    "no_consent": {"de": "keine (nur Beraterseite)", "en": "none (advisor side only)"},
    "accesses": {"de": "Zugriffe", "en": "Accesses"},
    "no_access": {"de": "keine Zugriffe außer der Archivierung", "en": "no access other than archiving"},
    "access_line": {"de": "{at}: {action} durch {role}", "en": "{at}: {action} by {role}"},
    "system": {"de": "CallFort (automatisch)", "en": "CallFort (automatic)"},
    "unknown_role": {"de": "Mitarbeiter/in", "en": "employee"},
    "source": {"de": "Herkunft", "en": "Source"},
    "source_text": {"de": "Telefongespräch mit Ihnen; erfasst über {source} am Standort {site}",
                    "en": "telephone call with you; captured through {source} at site {site}"},
    "deleted_at": {"de": "Gelöscht am", "en": "Deleted on"},
    "deleted_why": {"de": "Löschgrund", "en": "Reason for deletion"},
    "reason_retention-expired": {"de": "Ablauf der Speicherfrist", "en": "retention period ended"},
    "reason_art17-erasure": {"de": "Löschung auf Ihren Antrag (Art. 17 DSGVO)",
                             "en": "erased on your request (Art. 17 GDPR)"},
    "deleted_note": {
        "de": "Von gelöschten Aufzeichnungen bewahren wir nur einen Nachweis auf: Kennung, Zeitpunkte, Regel, "
              "Löschgrund, Prüfsummen und pseudonymisierte Kennungen. Ton und Schlüssel sind vernichtet.",
        "en": "Of deleted recordings we keep a record only: id, times, rule, reason, checksums and pseudonymised "
              "identifiers. Audio and key are destroyed."},
    "recipients": {"de": "Empfänger", "en": "Recipients"},
    "rec_authority": {"de": "Bundesanstalt für Finanzdienstleistungsaufsicht (BaFin) bzw. zuständige Aufsicht, "
                               "nur auf Anforderung (Art. 16 Abs. 7 MiFID II)",
                      "en": "the competent supervisory authority (e.g. BaFin), on request only (Art. 16(7) MiFID II)"},
    "rec_crm": {"de": "CRM-System ({name}): Gesprächsdaten und Verweise auf die Aufzeichnung",
                "en": "CRM system ({name}): call data and links to the recording"},
    "rec_processor": {"de": "Speicherdienstleister als Auftragsverarbeiter (Art. 28 DSGVO): nur verschlüsselte Daten",
                      "en": "storage provider as processor (Art. 28 GDPR): encrypted data only"},
    "rec_internal": {"de": "intern: Compliance, Datenschutz und – nach Vier-Augen-Freigabe – Teamleitung und "
                              "Qualitätssicherung",
                     "en": "internal: compliance, data protection and, after four-eyes approval, team leads and "
                           "quality assurance"},
    "third_country": {"de": "Eine Übermittlung in Drittländer findet nicht statt.",
                      "en": "No transfer to third countries takes place."},
    "automated": {"de": "Eine automatisierte Entscheidungsfindung einschließlich Profiling (Art. 22 DSGVO) findet "
                         "nicht statt.",
                  "en": "No automated decision-making, including profiling (Art. 22 GDPR), takes place."},
    "rights": {"de": "Ihre Rechte", "en": "Your rights"},
    "copy": {"de": "Kopien der Aufzeichnungen (Art. 15 Abs. 3 DSGVO, Art. 16 Abs. 7 MiFID II) erhalten Sie auf "
                    "Anfrage; die Herausgabe wird im Vier-Augen-Prinzip freigegeben.",
             "en": "Copies of the recordings (Art. 15(3) GDPR, Art. 16(7) MiFID II) are available on request; "
                   "their release is approved under the four-eyes principle."},
    "previous": {"de": "Frühere Auskünfte", "en": "Earlier reports"},
    "page": {"de": "Seite", "en": "Page"},
    "id": {"de": "Kennung", "en": "Id"},
    "site": {"de": "Standort", "en": "Site"},
}

RIGHTS: dict[str, list[str]] = {
    "de": [
        "Auskunft über Ihre Daten (Art. 15 DSGVO) – dieses Schreiben.",
        "Berichtigung unrichtiger Daten (Art. 16 DSGVO).",
        "Löschung (Art. 17 DSGVO), soweit keine gesetzliche Aufbewahrungspflicht besteht; Aufzeichnungen der "
        "Anlageberatung müssen wir nach Art. 16 Abs. 7 MiFID II fünf (bis sieben) Jahre aufbewahren "
        "(Art. 17 Abs. 3 lit. b DSGVO).",
        "Einschränkung der Verarbeitung (Art. 18 DSGVO).",
        "Datenübertragbarkeit (Art. 20 DSGVO) für Daten, die auf Ihrer Einwilligung beruhen.",
        "Widerspruch gegen Verarbeitungen auf Grundlage berechtigter Interessen (Art. 21 DSGVO), etwa der "
        "internen Qualitätssicherung.",
        "Widerruf einer Einwilligung mit Wirkung für die Zukunft (Art. 7 Abs. 3 DSGVO).",
        "Keine ausschließlich automatisierte Entscheidung (Art. 22 DSGVO).",
        "Beschwerde bei einer Datenschutz-Aufsichtsbehörde (Art. 77 DSGVO): {authority}.",
    ],
    "en": [
        "Access to your data (Art. 15 GDPR) – this report.",
        "Rectification of inaccurate data (Art. 16 GDPR).",
        "Erasure (Art. 17 GDPR) where no law requires us to keep the data; recordings of investment advice must "
        "be kept for five (up to seven) years under Art. 16(7) MiFID II (Art. 17(3)(b) GDPR).",
        "Restriction of processing (Art. 18 GDPR).",
        "Data portability (Art. 20 GDPR) for data processed on your consent.",
        "Objection to processing based on legitimate interests (Art. 21 GDPR), such as internal quality "
        "assurance.",
        "Withdrawal of consent with effect for the future (Art. 7(3) GDPR).",
        "No decision based solely on automated processing (Art. 22 GDPR).",
        "A complaint to a data protection supervisory authority (Art. 77 GDPR): {authority}.",
    ],
}

DEFAULT_AUTHORITY = {"de": "die für uns oder Ihren Wohnort zuständige Aufsichtsbehörde",
                     "en": "the authority competent for us or for where you live"}

#: Purpose and legal basis of the built-in rules, by rule-name prefix.
RULE_TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "mifid-": {
        "de": ("Nachweis der Anlageberatung und von Kundenaufträgen (Anlegerschutz)",
               "Art. 6 Abs. 1 lit. c DSGVO i. V. m. Art. 16 Abs. 7 MiFID II und § 83 Abs. 3 WpHG "
               "(gesetzliche Aufzeichnungs- und Aufbewahrungspflicht)"),
        "en": ("evidence of investment advice and client orders (investor protection)",
               "Art. 6(1)(c) GDPR with Art. 16(7) MiFID II and § 83(3) WpHG (legal duty to record and keep)"),
    },
    "advisor-only-": {
        "de": ("interne Qualitätssicherung der Beratung",
               "Art. 6 Abs. 1 lit. f DSGVO (berechtigtes Interesse), Betriebsvereinbarung nach § 87 Abs. 1 Nr. 6 "
               "BetrVG"),
        "en": ("internal quality assurance of advice",
               "Art. 6(1)(f) GDPR (legitimate interest), works agreement under § 87(1) no. 6 BetrVG"),
    },
    "consent-": {
        "de": ("Dokumentation des Gesprächs auf Ihren Wunsch", "Art. 6 Abs. 1 lit. a DSGVO (Einwilligung)"),
        "en": ("documentation of the conversation at your wish", "Art. 6(1)(a) GDPR (consent)"),
    },
    "extended": {
        "de": ("verlängerte Aufbewahrung auf Verlangen der Aufsicht",
               "Art. 6 Abs. 1 lit. c DSGVO i. V. m. Art. 16 Abs. 7 MiFID II (bis zu sieben Jahre)"),
        "en": ("extended keeping at the authority's request",
               "Art. 6(1)(c) GDPR with Art. 16(7) MiFID II (up to seven years)"),
    },
}

#: Audit actions as the report names them.
ACTIONS: dict[str, dict[str, str]] = {
    "recording.archive": {"de": "archiviert", "en": "archived"},
    "recording.show": {"de": "Angaben angesehen", "en": "details viewed"},
    "recording.play": {"de": "angehört", "en": "listened to"},
    "recording.stream": {"de": "angehört", "en": "listened to"},
    "recording.export": {"de": "exportiert", "en": "exported"},
    "recording.purge": {"de": "gelöscht (Fristablauf)", "en": "deleted (retention ended)"},
    "recording.erase": {"de": "gelöscht (Art. 17)", "en": "erased (Art. 17)"},
    "retention.extend": {"de": "Speicherfrist verlängert", "en": "retention extended"},
    "retention.shorten": {"de": "Speicherfrist verkürzt", "en": "retention shortened"},
    "retention.apply": {"de": "Speicherfrist festgelegt", "en": "retention set"},
    "hold.set": {"de": "Löschung ausgesetzt (Rechtsstreit)", "en": "legal hold set"},
    "hold.release": {"de": "Aussetzung der Löschung beendet", "en": "legal hold released"},
    "dsar.export": {"de": "Kopie für Sie erstellt", "en": "copy made for you"},
}

METHODS: dict[str, dict[str, str]] = {
    "web": {"de": "Web-Oberfläche", "en": "web interface"},
    "api": {"de": "Schnittstelle", "en": "interface"},
    "cli": {"de": "Erfassung durch unsere Mitarbeitenden", "en": "entry by our staff"},
    "cti": {"de": "Telefonie-Taste", "en": "telephony key"},
    "dtmf": {"de": "Tastenkombination am Telefon", "en": "phone key code"},
}


#: Capture sources as the person reads them (internal names never appear in the report).
SOURCES: dict[str, dict[str, str]] = {
    "cli": {"de": "manuelle Übernahme durch die Verwaltung", "en": "manual import by the administration"},
    "import": {"de": "manuelle Übernahme durch die Verwaltung", "en": "manual import by the administration"},
    "api": {"de": "Schnittstelle der Telefonanlage", "en": "interface of the telephone system"},
    "upload": {"de": "Hochladen durch die Verwaltung", "en": "upload by the administration"},
}

_RULE_NAMES: dict[str, dict[str, str]] = {
    "mifid-": {"de": "gesetzliche Aufbewahrung nach MiFID II", "en": "statutory keeping under MiFID II"},
    "advisor-only-": {"de": "Betriebsvereinbarung", "en": "works agreement"},
    "consent-": {"de": "Ihre Einwilligung", "en": "your consent"},
    "extended": {"de": "Verlängerung auf Verlangen der Aufsicht", "en": "extension at the authority's request"},
}
_UNITS = {"y": ("Jahre", "years"), "d": ("Tage", "days"), "m": ("Monate", "months"), "w": ("Wochen", "weeks")}


def source_label(lang: str, source: str) -> str:
    if source.startswith("api.") or source.startswith("api:"):
        source = "api"
    return SOURCES.get(source, {}).get(lang, source)


def rule_label(lang: str, rule: str | None) -> str:
    """``mifid-5y`` -> "statutory keeping under MiFID II, 5 years"; a plugin's rule keeps its name."""
    if not rule:
        return "-"
    for prefix, names in _RULE_NAMES.items():
        if rule == prefix or (prefix.endswith("-") and rule.startswith(prefix)):
            m = re.fullmatch(r"(\d+)([ydmw])", rule[len(prefix):]) if prefix.endswith("-") else None
            if m:
                unit = _UNITS[m.group(2)][0 if lang == "de" else 1]
                return f"{names[lang]}, {m.group(1)} {unit}"
            return names[lang]
    return rule


def number(lang: str, value: float) -> str:
    return format_decimal(value, locale=lang)


def t(lang: str, key: str, **values: object) -> str:
    text = TEXTS[key][lang]
    return text.format(**values) if values else text


def rule_texts(lang: str, rule: str, purpose: str = "", legal_basis: str = "") -> tuple[str, str]:
    """(purpose, legal basis) of a rule in ``lang``; a plugin's own rule keeps its own words."""
    for prefix, texts in RULE_TEXTS.items():
        if rule == prefix or (prefix.endswith("-") and rule.startswith(prefix)):
            return texts[lang]
    return purpose or rule, legal_basis or "-"


def action_text(lang: str, action: str) -> str:
    return ACTIONS.get(action, {}).get(lang, action)


def method_text(lang: str, method: str) -> str:
    return METHODS.get(method, {}).get(lang, method)


def human_time(lang: str, iso: str | None, tz: str = "UTC") -> str:
    """``03.06.2024, 12:00 MESZ`` (de) or ``3 Jun 2024, 12:00 GMT+02:00`` (en), in the zone ``tz``."""
    if not iso:
        return "-"
    at = datetime.fromisoformat(iso).astimezone(ZoneInfo(tz))
    return format_datetime(at, "dd.MM.yyyy, HH:mm zzz" if lang == "de" else "d MMM yyyy, HH:mm ZZZZ", locale=lang)


def human_date(lang: str, iso: str | None, tz: str = "UTC") -> str:
    if not iso:
        return "-"
    at = datetime.fromisoformat(iso).astimezone(ZoneInfo(tz))
    return format_datetime(at, "dd.MM.yyyy" if lang == "de" else "d MMM yyyy", locale=lang)
