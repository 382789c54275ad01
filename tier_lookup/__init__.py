"""Tier tables in Redis and the caller's one identity.

Public API: `TierLookup.identify` (call path), `TierStore` (Redis I/O), `import_table` (CSV),
`resolve_identity` (the pure decision) and `Identity`.
"""

from tier_lookup.identity import Identity, resolve_identity
from tier_lookup.importer import ImportOptions, ImportReport, Mode, import_table
from tier_lookup.service import TierLookup
from tier_lookup.store import TierStore

__all__ = [
    "Identity",
    "ImportOptions",
    "ImportReport",
    "Mode",
    "TierLookup",
    "TierStore",
    "import_table",
    "resolve_identity",
]
