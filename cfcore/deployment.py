"""The default deployment that `cf init` writes."""

DEFAULT_CONFIG = """\
# CallFort deployment. Secrets are never written here: use { env = "NAME" } or { file = "path" }.

[deployment]
site = "{site}"
data_dir = "."

[catalog]
# PostgreSQL: url = "postgresql+psycopg://callfort@db.example/callfort"
url = "sqlite:///catalog.db"

[keys]
provider = "keyring"
dir = "keys"

[archive]
stores = ["primary"]
required_copies = 1
codec = "pcm"

[stores.primary]
type = "local"
root = "media"

[plugins]
disabled = []
required = []
"""
