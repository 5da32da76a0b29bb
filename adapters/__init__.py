"""Provider adapters: one folder per platform, all speaking the protocols in sync.contract."""

import sys

# httpx imports its command-line client (click, rich, pygments: ~4.5 MB resident) whenever those
# are installed, and clinicbot has them for its own CLI. No clinicbot process runs `httpx.main`;
# marking the module absent before the first `import httpx` makes httpx skip it (its fallback).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
