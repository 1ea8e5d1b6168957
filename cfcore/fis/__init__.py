"""The fraud information system (FIS): integrity scrubs, irregularity rules over the audit trail,
alerts to the data-protection officer, and GDPR Art. 33 breach cases.

- ``scrub``: checks the audit chain, every media object, catalog against stores, data keys and the
  catalog rows against the ``row_digest`` the audit trail vouches for.
- ``rules``: the ``cf_fis_rules`` registrations with their ``[fis.rules.<name>]`` options.
- ``scan``: runs both, dedupes and stores alerts, audits ``fis.alert``, queues deliveries.
- ``deliver``: every alert to every ``[notify.<name>]`` notifier, retried with back-off.
- ``breach``: Art. 33 cases with the 72-hour clock and a notification draft (de/en).
"""
