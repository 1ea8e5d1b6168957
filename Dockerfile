# CallFort in a container: the same package set as scripts/setup (CallFort with PostgreSQL support
# and every in-tree plugin), run as an unprivileged user. See compose.yaml and docs/operations.md.
FROM python:3.11-slim-bookworm

RUN useradd --system --uid 10001 --home-dir /var/lib/callfort --create-home --shell /usr/sbin/nologin callfort

WORKDIR /opt/callfort
COPY pyproject.toml README.md LICENSE ./
COPY hookspecs ./hookspecs
COPY cfcore ./cfcore
COPY plugins ./plugins
# the package set of scripts/setup: ".[postgres]" and every plugins/*/ (not editable in an image)
RUN python -m pip install --no-cache-dir ".[postgres]" plugins/*/

USER callfort
WORKDIR /var/lib/callfort
ENV CF_CONFIG=/etc/callfort/callfort.toml
EXPOSE 8750
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8750/health').status != 200)"]
ENTRYPOINT ["cf"]
CMD ["serve", "--host", "0.0.0.0", "--log-format", "json"]
