"""Sites and the central archive (issue 17): roles, sealed keys, batches, receipts, hand-over.

Modules: ``settings`` (role and ``[sync]``), ``site_keys`` (sealing at ingest), ``send`` (the site
side of ``cf sync``), ``handover`` (the receipt ends the site's custody), ``receive`` (the archive
imports its inbox), ``site_audit`` (the sites' chains inside the archive), ``overdue``, ``jobs`` (the
jobs ``cf serve`` runs, returned by ``cfcore.defaults.jobs``; see docs/sites.md).
"""
