"""Every key of the core's config sections, declared once.

``validate`` (``cfcore.config``) refuses a key that is not declared here with one line naming the
file, the key and the closest valid name; ``docs/config.md`` is generated from these declarations
(``python -m cfcore.config_schema > docs/config.md``; a test checks that it is current and that
every key the code reads is declared). Plugin sections (``[plugins.<name>]``, ``[stores.<name>]``,
``[notify.<name>]``, ``[keys]`` of a provider plugin) are checked against the options the plugin
declares (``hookspecs.options``); ``[fis.rules.<rule>]`` against the rule's options.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs


@attrs.frozen
class Key:
    name: str
    type: str
    default: str
    doc: str


def _k(name: str, type_: str, default: str, doc: str) -> Key:
    return Key(name, type_, default, doc)


#: dotted section -> its keys. ``"*"`` sub-tables (``retention.classes.*``) are checked by their owner.
SECTIONS: dict[str, tuple[Key, ...]] = {
    "deployment": (
        _k("site", "string", '"site-a"', "Name of this site (recordings and audit entries carry it)."),
        _k("data_dir", "path", '"."', "Working directory of the deployment (relative to this file)."),
        _k("country_code", "string", '"49"', "Country calling code for numbers written without one."),
        _k("role", "string", '"standalone"', "standalone, site (records, hands over to the archive) or archive "
           "(see docs/sites.md)."),
        _k("time_zone", "string", '"Europe/Berlin"', "Time zone of the deployment: Art. 15 reports show times in it "
           "(and the web UI, unless [webui] time_zone says otherwise)."),
    ),
    "catalog": (
        _k("url", "string", '"sqlite:///catalog.db"',
           "The catalog database: sqlite:///FILE or postgresql+psycopg://user@host/db."),
    ),
    "keys": (
        _k("provider", "string", '"keyring"', "Key-encryption keys: the built-in key ring file, or a plugin's provider "
                                              "(its options then go into this section too)."),
        _k("dir", "path", '"keys"', "Directory of the secret files (mode 0700, each file 0600). Back it up."),
    ),
    "archive": (
        _k("stores", "list of store names", "every [stores.*]", "The media stores recordings are written to."),
        _k("required_copies", "integer", "1", "How many stores must confirm each write."),
        _k("codec", "string", '"pcm"', "Storage codec of the audio: pcm (PCM16), flac (lossless, the export is "
           "bit-exact) or opus (lossy speech quality, about 6 MB per stereo call-hour; 8/12/16/24/48 kHz sources)."),
        _k("class_codecs", "table", "{}", "Storage codec per retention class, e.g. { mifid = \"flac\", "
           "advisor-only = \"opus\" }; classes not named use codec."),
        _k("segment_size", "integer", "65536", "Bytes per encrypted segment (playback seeks by segment)."),
        _k("max_call_age_days", "integer", "3660", "Calls older than this are refused at ingest (a wrong date)."),
    ),
    "plugins": (
        _k("disabled", "list of plugin names", "[]", "Installed plugins not to load."),
        _k("required", "list of plugin names", "[]", "Plugins that must load, else start-up stops."),
    ),
    "access": (
        _k("approvals_required", "integer", "1", "Approvals a four-eyes request needs (never by the requester)."),
        _k("approval_hours", "integer", "24", "Hours a four-eyes request stays open."),
        _k("link_ttl_seconds", "integer", "300", "Lifetime of a signed streaming link."),
        _k("link_bind_ip", "boolean", "false", "A streaming link works only from the IP it was made for."),
        _k("max_failed_logins", "integer", "(unused)", "No longer used: wrong passwords delay the next attempt, they "
           "never lock an account (login_* keys); accepted so that older configs still load."),
        _k("lockout_minutes", "integer", "(unused)", "No longer used (see max_failed_logins)."),
        _k("link_require_login", "boolean", "true", "A streaming link also needs the player's session."),
        _k("min_password_length", "integer", "12", "Shortest password accepted."),
        _k("session_minutes", "integer", "480", "Lifetime of a web session."),
        _k("token_days", "integer", "90", "Default lifetime of an API token."),
        _k("token_max_days", "integer", "365", "Longest lifetime of an API token."),
        _k("reset_hours", "integer", "24", "Lifetime of a password-reset code."),
        _k("auth_failure_window_seconds", "integer", "60", "Window in which bad-token failures are counted."),
        _k("argon2_time_cost", "integer", "3", "Argon2id iterations of password hashes."),
        _k("argon2_memory_kib", "integer", "65536", "Argon2id memory of password hashes (KiB)."),
        _k("argon2_parallelism", "integer", "4", "Argon2id lanes of password hashes."),
        _k("login_free_per_account_ip", "integer", "3", "Failed log-ins per account and IP before delays begin."),
        _k("login_free_per_ip", "integer", "10", "Failed log-ins per IP before delays begin."),
        _k("login_free_per_account", "integer", "20", "Failed log-ins per account before delays begin."),
        _k("login_max_delay_seconds", "integer", "60", "Longest delay after failed log-ins (never a lock-out)."),
        _k("login_window_seconds", "integer", "900", "How long failed log-ins are remembered."),
        _k("login_hash_slots", "integer", "0", "Password hashes computed at once (0: one per CPU)."),
        _k("login_max_waiting", "integer", "0", "Log-ins queued for a hash slot before 429 (0: 4 per slot)."),
    ),
    "retention": (
        _k("mifid_years", "integer", "5", "Retention of two-sided calls (MiFID II: at least 5)."),
        _k("mifid_max_years", "integer", "7", "Longest extension the authority may ask for."),
        _k("advisor_only_days", "integer", "30", "Retention of advisor-only calls."),
        _k("purge_interval_seconds", "integer", "86400", "How often cf serve runs the purge."),
        _k("classes", "table of classes", "{}", "Extra retention classes [retention.classes.<name>] (docs/retention.md)."),
    ),
    "audit": (
        _k("anchor_every", "integer", "1000", "Write a signed anchor outside the database every N entries."),
        _k("anchor_interval_seconds", "integer", "300", "… and at least this often while cf serve runs."),
        _k("anchor_retain_days", "integer", "3650", "Object Lock retention of each anchor (S3)."),
        _k("anchor_stores", "list of store names", "every archive store", "Stores that keep the anchors."),
    ),
    "server": (
        _k("host", "string", '"127.0.0.1"', "Listen address of cf serve."),
        _k("port", "integer", "8750", "Port of cf serve."),
        _k("public_url", "string", '""', "The URL people reach the server at (streaming links)."),
        _k("outbox_max_attempts", "integer", "200", "Attempts per integration outbox message before it is given up."),
        _k("tls_cert", "path", '""', "PEM certificate: cf serve speaks HTTPS itself (with tls_key)."),
        _k("tls_key", "path", '""', "PEM private key of tls_cert (mode 0600)."),
        _k("tls_client_ca", "path", '""', "PEM CA bundle: clients (the CRM) must show a certificate from it (mutual TLS)."),
        _k("trusted_proxies", "list of addresses", "[]", "Reverse proxies whose X-Forwarded-For is believed."),
        _k("log_format", "string", '"text"', "Log lines: text, json (JSON lines) or kv (key=value)."),
        _k("secure_cookies", "boolean", "false", "The session cookie is always Secure (behind a TLS proxy)."),
        _k("worker_name", "string", "the host name", "Name of this cf serve worker in leases and logs (the pid and a "
           "random suffix are added, so several workers may share it)."),
        _k("lease_seconds", "number", "30", "Several workers on one catalog: a dead worker's jobs, capture sources and "
           "claimed items are taken over after this long (at least 2)."),
        _k("heartbeat_seconds", "number", "10", "How often a worker renews its leases (default and at most: a third "
           "of lease_seconds)."),
    ),
    "capture": (
        _k("event_loop", "string", '"asyncio"', "Event loop of cf capture run: asyncio or uvloop."),
        _k("live_segment_size", "integer", "16000", "Bytes of PCM per encrypted live-spool segment (1 s)."),
        _k("pickup_dir", "path", '""', "Pickup directory of finished calls (<name>.wav, <name>.customer.wav, "
           "<name>.json last); cf serve workers share it (cfcore/pickup.py); empty: off."),
        _k("pickup_source", "string", '"pickup"', "Source name the pickup's recordings are archived under."),
        _k("pickup_max_attempts", "integer", "5", "Claims of one pickup call that end without a result (workers "
           "died) before it is given up."),
        _k("sources", "table of sources", "{}", "What each capture source is trusted with "
           "[capture.sources.<name>] (by the source's name, e.g. asterisk, mobile, siprec)."),
    ),
    "capture.sources.<name>": (
        _k("consent_witness", "boolean", "false", "The source may report the customer's own opt-in (a DTMF "
           "digit after the announcement) and the core records it as consent. Off: such reports are refused, "
           "audited and alerted (FIS rule untrusted-consent)."),
    ),
    "fis": (
        _k("scan_interval_seconds", "integer", "300", "How often cf serve scans for irregularities."),
        _k("scrub_interval_seconds", "integer", "3600", "How often cf serve verifies stored copies."),
        _k("rules", "table of rules", "{}", "Rule options [fis.rules.<rule>] (docs/fis.md)."),
        _k("delivery", "table", "{}", "Alert delivery retries [fis.delivery]."),
        _k("breach", "table", "{}", "Defaults of Art. 33 notification drafts [fis.breach]."),
    ),
    "fis.delivery": (
        _k("base_seconds", "number", "30", "First retry of a failed alert delivery (doubling per attempt)."),
        _k("max_seconds", "number", "3600", "Longest wait between retries (never given up)."),
    ),
    "fis.breach": (
        _k("controller", "string", '""', "The controller named in Art. 33 drafts."),
        _k("dpo_name", "string", '""', "The DPO named in Art. 33 drafts."),
        _k("dpo_contact", "string", '""', "The DPO's contact in Art. 33 drafts."),
        _k("authority", "string", '""', "The supervisory authority of Art. 33 drafts."),
    ),
    "sync": (
        _k("target", "string", '"archive"', "Site: the [sync.targets.<name>] the nightly batch goes to."),
        _k("window", "string", '"01:00-05:00"', "Site: the nightly hand-over window (HH:MM-HH:MM)."),
        _k("timezone", "string", '"Europe/Berlin"', "Site: time zone of the window."),
        _k("bandwidth_kbps", "integer", "0", "Site: upload cap in kbit/s (0: none)."),
        _k("batch_recordings", "integer", "500", "Site: recordings per batch."),
        _k("chunk_size", "integer", "4194304", "Site: upload chunk in bytes."),
        _k("parallel_objects", "integer", "4", "Site: objects uploaded at once."),
        _k("archive_public_key", "string", '""', "Site: the archive's X25519 public key (data keys are sealed to it)."),
        _k("archive_signing_key", "string", '""', "Site: the archive's Ed25519 key that signs receipts."),
        _k("local_key", "string", '"until-handover"', "Site: how long the site keeps a recording's key."),
        _k("receipt_wait_seconds", "integer", "60", "Site: how long to wait for the archive's receipt."),
        _k("inbox", "path", '""', "Archive: directory the sites upload to."),
        _k("overdue_nights", "integer", "2", "Archive: nights without a batch before a site is overdue."),
    ),
    "webui": (
        _k("default_language", "string", '"de"', "Language of the web UI before a user picks one (de or en)."),
        _k("idle_minutes", "integer", "15", "Web UI sessions end after this many idle minutes."),
        _k("time_zone", "string", "the [deployment] time_zone", "Time zone the web UI shows times in."),
    ),
    "dsar": (
        _k("controller_name", "string or {de, en}", '""', "The controller's name on Art. 15 reports (missing: the "
           "report says so)."),
        _k("controller_address", "string or {de, en}", '""', "The controller's postal address on Art. 15 reports."),
        _k("controller", "string or {de, en}", '""', "Older spelling of controller_name."),
        _k("dpo_contact", "string or {de, en}", '""', "The data protection officer's contact on Art. 15 reports."),
        _k("authority", "string or {de, en}", "the Hessian DPA", "Supervisory authority named on reports."),
        _k("crm_name", "string", '"CRM"', "Name of the CRM listed as a source of data."),
        _k("recipients", "list of strings or {de, en}", "[]", "Further recipients listed on reports."),
    ),
}

#: Sections whose keys are plugin options or names (``[stores.<name>]``, ``[notify.<name>]``) or
#: belong to areas that validate them themselves.
OPEN_SECTIONS = frozenset({"stores", "notify", "sync", "crm"})

#: Key names that hold secrets wherever they appear: a plain string there is refused.
SECRET_NAMES = frozenset({"password", "secret", "secret_key", "access_key", "session_token", "token", "api_key",
                          "passphrase", "client_secret", "private_key"})


def closest(name: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def render_markdown() -> str:
    """``docs/config.md``: a commented reference of every core key."""
    lines = [
        "# Configuration reference (`callfort.toml`)",
        "",
        "Generated from `cfcore/config_schema.py` (`python -m cfcore.config_schema > docs/config.md`; a test",
        "checks it is current). An unknown key stops start-up with one line naming the file, the key and",
        "the closest valid name. Secrets are never written in clear: any key named "
        + ", ".join(f"`{n}`" for n in sorted(SECRET_NAMES)),
        'must be `{ env = "NAME" }` or `{ file = "path" }`.',
        "",
        "Plugin sections (`[plugins.<name>]`, `[stores.<name>]`, `[notify.<name>]`, a key provider's `[keys]`",
        "options) are checked against the options class each plugin declares (`cf_plugin_options` or its",
        "registration's `options`; `hookspecs.parse_options`, see `docs/plugins.md`) when the section is used;",
        "`cf doctor` checks every `[plugins.<name>]`, store and `[notify.<name>]` section that way. `cf plugins",
        "--all` lists the installed plugins. `[crm]`, the 1.0 name of `[plugins.crm_soap]`, is still read (with a",
        "deprecation warning) while `[plugins.crm_soap]` is absent.",
        "",
    ]
    for section, keys in SECTIONS.items():
        lines += [f"## [{section}]", "", "```toml", f"[{section}]"]
        for key in keys:
            lines.append(f"# {key.doc} ({key.type}; default {key.default})")
            lines.append(f"# {key.name} = {key.default if not key.default.startswith(('every', 'the ')) else '…'}")
        lines += ["```", ""]
    return "\n".join(lines)


def commented_sections(skip: Iterable[str]) -> str:
    """The sections not in ``skip`` as commented TOML (what ``cf init`` appends to its config)."""
    out = ["", "# ---- every other setting, with its default (uncomment to change; docs/config.md) ----"]
    for section, keys in SECTIONS.items():
        if section in skip:
            continue
        out += ["", f"# [{section}]"]
        for key in keys:
            value = key.default if not key.default.startswith(("every", "the ")) else "…"
            out.append(f"# {key.name} = {value}  # {key.doc}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
