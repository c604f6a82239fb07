"""The Temporal search attributes a dispute workflow keeps up to date, so disputes can be
listed in the Temporal UI and with `temporal workflow list --query "AccordStage = 'mediation'"`.

Never personal data: the stage, the category, the running deadline, the claimant's tier and
region, and the audit trail's chain head ("<seq>:<hash>" of the last entry the workflow got
back), which `accord verify --all` compares with the database: entries deleted from the end of
a trail, or a whole trail, show there although every chain left in the table still verifies.
Every Temporal that runs Accord's workflows must know them: the embedded dev server is started
with `--search-attribute` flags (DEV_SERVER_FLAGS), the compose bootstrap creates them
with `temporal operator search-attribute create`, and `register` adds them through the
operator API (tests, and any server added later).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
)
from temporalio.service import RPCError, RPCStatusCode

STAGE = SearchAttributeKey.for_keyword("AccordStage")
CATEGORY = SearchAttributeKey.for_keyword("AccordCategory")
SLA_DEADLINE = SearchAttributeKey.for_datetime("AccordSlaDeadline")
CLAIMANT_TIER = SearchAttributeKey.for_keyword("AccordClaimantTier")
REGION = SearchAttributeKey.for_keyword("AccordRegion")
AUDIT_HEAD = SearchAttributeKey.for_keyword("AccordAuditHead")

TYPES = {
    STAGE.name: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    CATEGORY.name: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    SLA_DEADLINE.name: ("Datetime", IndexedValueType.INDEXED_VALUE_TYPE_DATETIME),
    CLAIMANT_TIER.name: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    REGION.name: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
    AUDIT_HEAD.name: ("Keyword", IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
}

DEV_SERVER_FLAGS = [
    flag for name, (kind, _) in TYPES.items() for flag in ("--search-attribute", f"{name}={kind}")
]


async def register(client: Client, namespace: str) -> None:
    """Add the attributes the namespace does not have yet (safe to repeat)."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(listed.custom_attributes)
    except RPCError as error:
        # The time-skipping test server can add attributes but not list them.
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {name: indexed for name, (_, indexed) in TYPES.items() if name not in known}
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as error:
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
