"""Identity stitching in Python: connected components on DuckDB's fast path, and explanations."""

# The identifier types Tessera stitches on (DESIGN.md, Identity); macro identifier_types is the
# same list for SQL.
IDENTIFIER_TYPES = (
    "anonymous_id",
    "user_id",
    "email",
    "phone",
    "crm_contact_id",
    "shop_customer_ref",
    "device_id",
)
