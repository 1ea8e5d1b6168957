"""``cf backup``, ``cf restore`` and ``cf db upgrade``: system paths run by the service account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .output import emit

_PASS_ENV = click.option("--passphrase-env", default="CF_BACKUP_PASSPHRASE", show_default=True,
                         help="Environment variable holding the passphrase (at least 12 characters).")
_PASS_FILE = click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=True), default=None,
                          help="Read the passphrase from this file instead (mode 0600).")


def register(cli: click.Group) -> None:
    @cli.command("backup", short_help="Write an encrypted backup of catalog, keys, audit anchors and config.")
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="The backup file to write (required).")
    @_PASS_ENV
    @_PASS_FILE
    @click.option("--json", "as_json", is_flag=True, help="Print the backup's manifest as JSON.")
    @click.pass_obj
    def backup_cmd(state: Any, out: str, passphrase_env: str, passphrase_file: str | None, as_json: bool) -> None:
        """Write a consistent, encrypted (AES-256-GCM, scrypt passphrase) backup of the catalog, the
        key ring and secret files, the audit anchors and callfort.toml. Media is NOT included: back
        up the media stores themselves (local root directory, S3 bucket versioning/replication).

        \b
        Example:
          CF_BACKUP_PASSPHRASE="$(cat /etc/callfort/backup-pass)" cf backup --out /backup/cf-$(date +%F).cfbk
        """
        from ..backup import backup, passphrase_from
        from .context import system_cli_context

        passphrase = passphrase_from(passphrase_env, passphrase_file)
        app = state.app
        manifest = backup(app, Path(out), passphrase)
        app.audit.record(system_cli_context("cli.backup"), "deployment.backup", "deployment", app.config.site, "ok",
                         {"tables": sum(manifest["tables"].values()), "anchors": manifest["anchors"]})
        emit(manifest, as_json, f"backup written to {out} ({sum(manifest['tables'].values())} rows, "
                                f"{len(manifest['keys'])} key files, {manifest['anchors']} audit anchors); "
                                "media is not in it: back up the media stores too")

    @cli.command("restore", short_help="Restore a backup into an empty deployment.")
    @click.argument("backup_file", type=click.Path(dir_okay=False, exists=True))
    @_PASS_ENV
    @_PASS_FILE
    @click.option("--json", "as_json", is_flag=True, help="Print what was restored as JSON.")
    @click.pass_obj
    def restore_cmd(state: Any, backup_file: str, passphrase_env: str, passphrase_file: str | None,
                    as_json: bool) -> None:
        """Restore BACKUP_FILE into the deployment of --config / CF_CONFIG, which must be empty (no
        key files, an empty catalog). Restore the media stores first; the restore reports recordings
        whose media no store holds.

        \b
        Example:
          cf --config /srv/callfort/callfort.toml restore /backup/cf-2026-12-01.cfbk
          cf --config /srv/callfort/callfort.toml audit verify
        """
        from ..backup import passphrase_from, restore
        from ..config import load_config

        result = restore(load_config(state.config_path), Path(backup_file), passphrase_from(passphrase_env,
                                                                                            passphrase_file))
        missing = result["missing_media_count"]
        emit(result, as_json, f"restored {sum(result['tables'].values())} rows, {len(result['keys'])} key files and "
                              f"{result['anchors']} audit anchors of site {result['site']} "
                              f"(backup of {result['created_at']})"
                              + (f"; {missing} media objects are in no store: restore the media stores" if missing
                                 else "; every recording's media is in the stores"))

    @cli.group("db", short_help="The catalog's schema: upgrade after installing a new CallFort.")
    def db() -> None:
        """The catalog's schema.

        \b
        Example:
          cf db upgrade
        """

    @db.command("upgrade", short_help="Bring the catalog's schema to this version (Alembic).")
    @click.option("--json", "as_json", is_flag=True, help="Print {from, to} as JSON.")
    @click.pass_obj
    def upgrade(state: Any, as_json: bool) -> None:
        """Apply the schema migrations this CallFort version brings (take a backup first). Safe to
        run twice; several processes wait for each other on PostgreSQL.

        \b
        Example:
          cf backup --out before-upgrade.cfbk && cf db upgrade
        """
        from ..config import load_config
        from ..db.catalog import Catalog
        from ..doctor import catalog_revision, head_revision

        config = load_config(state.config_path)
        catalog = Catalog.from_url(config.get("catalog.url", str, "sqlite:///catalog.db"), config.base_dir)
        try:
            before = catalog_revision(catalog.engine)
            catalog.upgrade()
            after = catalog_revision(catalog.engine)
        finally:
            catalog.dispose()
        emit({"from": before, "to": after}, as_json,
             f"catalog schema: {before or '(empty)'} -> {after}" if before != after
             else f"catalog schema is at the newest revision {after}")
        assert after == head_revision()
