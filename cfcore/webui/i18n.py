"""The web UI's languages: gettext catalogues (``locale/<lang>/LC_MESSAGES/messages.po``, compiled
in memory with Babel when no fresh ``.mo`` is next to it), Babel for dates and numbers, and the
deployment's time zone (``[webui] time_zone``, default Europe/Berlin)."""

from __future__ import annotations

import functools
import gettext
import io
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel import Locale, numbers
from babel import dates as bdates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

if TYPE_CHECKING:
    from ..app import App

LANGUAGES = ("de", "en")
LOCALE_DIR = Path(__file__).parent / "locale"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """English is the source language; German comes from its .po file."""
    if lang == "en":
        return gettext.NullTranslations()
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as f:
            return gettext.GNUTranslations(f)
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def negotiate(accept_language: str | None, default: str = "de") -> str:
    """The best of LANGUAGES for an ``Accept-Language`` header."""
    prefs: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        item = part.strip()
        if not item:
            continue
        tag, _, q = item.partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        prefs.append((weight, tag.strip().replace("_", "-")))
    prefs.sort(key=lambda p: -p[0])
    for _, tag in prefs:
        lang = tag.split("-")[0].lower()
        if lang in LANGUAGES:
            return lang
    return default


def time_zone(app: App) -> ZoneInfo:
    return ZoneInfo(app.config.get("webui.time_zone", str, app.config.get("deployment.time_zone", str, "Europe/Berlin")))


class Formats:
    """Babel formatting bound to one language and the deployment's time zone."""

    def __init__(self, lang: str, tz: ZoneInfo) -> None:
        self.lang, self.tz = lang, tz
        self.locale = Locale.parse(lang)

    def when(self, value: str | datetime | None, fmt: str = "medium") -> str:
        if value in (None, ""):
            return "–"
        dt = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(dt, datetime)
        return bdates.format_datetime(dt, fmt, tzinfo=self.tz, locale=self.locale)

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        return numbers.format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""),
                                      locale=self.locale)

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return "–"
        s = int(round(seconds))
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

    def hours(self, seconds: float | None) -> str:
        if seconds is None:
            return "–"
        return numbers.format_decimal(seconds / 3600, format="#,##0.0", locale=self.locale)
