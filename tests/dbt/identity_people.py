"""Hand-made people whose identity graph is known: who owns which identifier, and which
identifiers several people typed. Written to raw.identifies, raw.orders and raw.crm_contacts."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import CRM_COLUMNS, IDENTIFY_COLUMNS, ORDER_COLUMNS, replace_rows

TS = "2025-01-01T00:00:00Z"


@dataclass
class People:
    """Source rows, and each person's identifiers as identity normalises them."""

    identifies: list[tuple[str | None, ...]] = field(default_factory=list)
    orders: list[tuple[str | None, ...]] = field(default_factory=list)
    crm_contacts: list[tuple[str | None, ...]] = field(default_factory=list)
    owners: dict[str, set[str]] = field(default_factory=dict)
    shared: set[str] = field(default_factory=set)

    def own(self, person: str, *values: str | None) -> None:
        self.owners.setdefault(person, set()).update(v for v in values if v is not None)

    def identify(
        self, person: str, anonymous_id: str, user_id: str | None, email: str | None,
        phone: str | None = None, ts: str = TS,
    ) -> None:  # fmt: skip
        row_id = f"i{len(self.identifies)}"
        self.identifies.append((row_id, anonymous_id, user_id, email, phone, ts))
        self.own(person, anonymous_id, user_id, email, phone)

    def order(
        self, person: str, customer_ref: str | None, email: str | None, phone: str | None,
        ts: str = TS,
    ) -> None:  # fmt: skip
        order_id = f"o{len(self.orders)}"
        self.orders.append(
            (order_id, customer_ref, email, phone, ts, "10.00", "USD", "completed", "web")
        )
        self.own(person, customer_ref, email, phone)

    def contact(
        self, person: str, contact_id: str, email: str | None, phone: str | None,
        first_name: str = "Sam", last_name: str = "Doe", ts: str = TS,
    ) -> None:  # fmt: skip
        self.crm_contacts.append(
            (contact_id, email, phone, first_name, last_name, None, "lead", ts, ts)
        )
        self.own(person, contact_id, email, phone)

    def write(self, warehouse: Warehouse) -> None:
        replace_rows(warehouse, "identifies", IDENTIFY_COLUMNS, self.identifies)
        replace_rows(warehouse, "orders", ORDER_COLUMNS, self.orders)
        replace_rows(warehouse, "crm_contacts", CRM_COLUMNS, self.crm_contacts)

    def add(self, other: People) -> People:
        """These people and ``other``'s, in one set of source tables (row ids renumbered)."""
        offset = len(self.identifies)
        self.identifies += [(f"i{offset + n}", *row[1:]) for n, row in enumerate(other.identifies)]
        offset = len(self.orders)
        self.orders += [(f"o{offset + n}", *row[1:]) for n, row in enumerate(other.orders)]
        self.crm_contacts += other.crm_contacts
        for person, values in other.owners.items():
            self.own(person, *values)
        self.shared |= other.shared
        return self

    def expected_clusters(self) -> set[frozenset[str]]:
        """Each person's identifiers but the shared ones: what identity must find."""
        return {frozenset(values - self.shared) for values in self.owners.values()}


def many_addresses() -> People:
    """One person who logs in with one account and, over the years, typed 6 email addresses and
    3 phones, and whom the CRM holds as 5 duplicate contacts (a CRM de-duplicates on email, so
    each duplicate was created from another address; two share a phone)."""
    people = People()
    emails = [f"maya.{n}@mail-{n}.io" for n in range(1, 7)]
    phones = ["+14155550101", "+14155550102", "+14155550103"]
    for n, email in enumerate(emails):
        people.identify("maya", f"anon-maya-{n % 3}", "user-maya", email)
    for n, phone in enumerate(phones):
        people.identify("maya", f"anon-maya-{n}", "user-maya", None, phone)
    contact_phones = [phones[0], phones[0], phones[1], None, phones[2]]
    for n, (email, phone) in enumerate(zip(emails, contact_phones, strict=False)):
        people.contact("maya", f"crm-maya-{n}", email, phone, "Maya", "Lopez")
    people.order("maya", "shop-maya", emails[5], phones[1])
    # Someone else in the same data, to show nothing spills over.
    people.identify("noah", "anon-noah", "user-noah", "noah@mail.io", "+14155550199")
    people.contact("noah", "crm-noah", "noah@mail.io", None, "Noah", "Kim")
    return people


def company_inbox(
    people_count: int = 50, inbox: str = "info@acme-corp.io", on_website: bool = True
) -> People:
    """A company inbox typed by ``people_count`` people who never logged in: half on the website's
    newsletter form (their own browser, some with their own phone), half as CRM contacts (their
    own contact, some with their own phone); all of them CRM contacts unless ``on_website``."""
    people = People()
    people.shared.add(inbox)
    company = inbox.split("@")[1].split(".")[0]
    for n in range(people_count):
        person = f"{company}-{n}"
        phone = f"+1212{len(company):03d}{n:04d}" if n % 2 == 0 else None
        if on_website and n < people_count // 2:
            people.identify(person, f"anon-{company}-{n}", None, inbox, phone)
        else:
            people.contact(person, f"crm-{company}-{n}", inbox, phone, f"Name{n}", company)
    return people


def placeholder_phone(people_count: int = 80) -> People:
    """A shop whose staff type the shop's own phone for ``people_count`` customers who have
    accounts (a customer ref) and email addresses of their own."""
    people = People()
    phone = "+13125550100"
    people.shared.add(phone)
    for n in range(people_count):
        people.order(f"shopper-{n}", f"ref-{n}", f"shopper{n}@mail.io", phone)
        if n % 4 == 0:
            people.order(f"shopper-{n}", f"ref-{n}", f"shopper{n}@mail.io", phone)
    return people


def customer_clusters(warehouse: Warehouse) -> set[frozenset[str]]:
    """identity_customer_map as sets of identifier values, one per customer."""
    groups: dict[str, set[str]] = {}
    for customer_id, value in warehouse.query(
        "select customer_id, identifier_value from identity.identity_customer_map"
    ):
        groups.setdefault(customer_id, set()).add(value)
    return {frozenset(group) for group in groups.values()}
