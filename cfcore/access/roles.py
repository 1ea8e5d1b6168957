"""The roles CallFort knows. What each role may do is the access policy's business
(``cfcore.defaults.access_policy.MATRIX``, documented in docs/access.md)."""

from __future__ import annotations

from ..errors import InputError

#: role -> (English, German) description, for listings and the UI.
ROLES: dict[str, tuple[str, str]] = {
    "advisor": ("Advisor: own calls only", "Berater/in: nur eigene Gespräche"),
    "supervisor": ("Supervisor / team lead", "Teamleitung"),
    "qa_reviewer": ("Quality assurance reviewer", "Qualitätssicherung"),
    "compliance": ("Compliance officer", "Compliance-Beauftragte/r"),
    "dpo": ("Data protection officer", "Datenschutzbeauftragte/r"),
    "auditor": ("Auditor (audit trail)", "Revision (Prüfpfad)"),
    "administrator": ("Technical administrator", "Technische Administration"),
}


def check_roles(roles: object) -> list[str]:
    """Validate role names; returns them sorted and de-duplicated."""
    names = sorted({str(r).strip() for r in (roles or [])})  # type: ignore[attr-defined]
    unknown = [r for r in names if r not in ROLES]
    if unknown:
        raise InputError(f"unknown role '{unknown[0]}'", hint="choose one of: " + ", ".join(ROLES))
    return names
