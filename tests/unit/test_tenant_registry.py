"""The tenant registry's pure parts: names Chroma accepts, and which tenants tools cover."""

from __future__ import annotations

from chroma_names import CHROMA_NAME
from chroma_operator.data.tenant_registry import (
    RESERVED_TENANT,
    registry_name,
    tenants_in,
    tenants_to_cover,
)


def test_registry_names_are_valid_collection_names_for_any_tenant() -> None:
    for tenant in ["acme", "a", "Ünïcode tenant/with spaces", "x" * 2000, "..", "-lead"]:
        name = registry_name(tenant)
        assert CHROMA_NAME.match(name), name
    assert registry_name("acme") == registry_name("acme")
    assert registry_name("acme") != registry_name("Acme")


def test_tenants_in_a_listing_skips_what_is_not_a_registration() -> None:
    listing = [
        {"name": registry_name("acme"), "metadata": {"tenant": "acme"}},
        {"name": registry_name("beta"), "metadata": {"tenant": "beta"}},
        {"name": "stray", "metadata": None},
        {"name": "odd", "metadata": {"tenant": 7}},
        {"name": "own", "metadata": {"tenant": RESERVED_TENANT}},
        {"name": "blank", "metadata": {"tenant": ""}},
    ]
    assert tenants_in(listing) == {"acme", "beta"}


def test_tools_cover_the_default_tenant_first_then_each_other_once() -> None:
    assert tenants_to_cover([], []) == ["default_tenant"]
    assert tenants_to_cover(["zeta", "default_tenant"], {"acme", "zeta"}) == [
        "default_tenant",
        "acme",
        "zeta",
    ]
    assert tenants_to_cover([RESERVED_TENANT], []) == ["default_tenant"]  # never copied
