"""Capture: the core side of PBX capture sources.

- ``controller``: live calls, the advisor's record-both / pause / resume requests, consents, and
  the hand-over of finished calls to ingest.
- ``runner``: runs the configured capture sources with a sink each and applies mode requests.
- ``jobs``: the ``cf serve`` job that runs the runner.
"""
