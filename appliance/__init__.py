"""Air-gapped fine-tuning appliance."""

from appliance import offline as _offline

_offline.enforce()

__version__ = "0.1.0"
