"""Work-order rules (pure): handling by tier and level, deadlines, status moves by role, what
makes an order overdue, who sees which orders, and the checks on what people type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hotline_core.numbers import number_kind
from hotline_core.policy import NORMAL, TIERS, Handling, Policy, WorkOrderSettings
from hotline_core.smstext import sms_parts
from hotline_core.text import unstorable

STATUSES = ("new", "dispatched", "replied", "closed", "reopened")
# What a handler calls each status (exports, pages).
STATUS_LABELS = {"new": "新建", "dispatched": "已派单", "replied": "已答复", "closed": "已关闭", "reopened": "已重开"}
OPEN = ("new", "dispatched", "reopened")  # waiting for a reply to the customer
# (from, to) -> the roles that may make that move
MOVES: Mapping[tuple[str, str], frozenset[str]] = {
    ("new", "dispatched"): frozenset({"handler", "supervisor"}),
    ("reopened", "dispatched"): frozenset({"handler", "supervisor"}),
    ("dispatched", "replied"): frozenset({"handler", "supervisor"}),
    ("replied", "closed"): frozenset({"handler", "supervisor"}),
    ("closed", "reopened"): frozenset({"supervisor"}),
}
SPECIAL_CUSTOMERS = (*TIERS, NORMAL)


class WorkOrderError(ValueError):
    """What was wrong, said to the person who asked (HTTP 400/403/422/429, CLI exit 2)."""

    def __init__(self, message: str, forbidden: bool = False, retry_after_s: int = 0, conflict: bool = False):
        super().__init__(message)
        self.forbidden = forbidden
        self.retry_after_s = retry_after_s  # over a quota: when it may be tried again
        self.conflict = conflict  # well formed, but at odds with what was asked before (HTTP 422)


def settings_of(policy: Policy) -> WorkOrderSettings:
    if policy.work_orders is None:
        raise WorkOrderError("the policy has no work_orders section")
    return policy.work_orders


def handling_for(policy: Policy, tier: str, level: str | None) -> Handling:
    """The level's rule if the policy has one, else the tier's."""
    orders = settings_of(policy)
    if level and level in orders.level_handling:
        return orders.level_handling[level]
    return orders.handling.get(tier, orders.handling[NORMAL])


@dataclass(frozen=True, slots=True)
class Deadlines:
    priority: int
    reply_due: datetime
    resolve_due: datetime


def deadlines(policy: Policy, tier: str, level: str | None, created_at: datetime) -> Deadlines:
    rule = handling_for(policy, tier, level)
    return Deadlines(rule.priority, created_at + timedelta(hours=rule.reply_hours),
                     created_at + timedelta(hours=rule.resolve_hours))


def check_move(current: str, target: str, role: str) -> None:
    if target not in STATUSES:
        raise WorkOrderError(f"unknown status {target!r}; statuses: {', '.join(STATUSES)}")
    allowed = MOVES.get((current, target))
    if allowed is None:
        nexts = [to for (frm, to) in MOVES if frm == current]
        raise WorkOrderError(f"an order that is {current} cannot become {target}"
                             + (f"; it can become {', '.join(nexts)}" if nexts else ""))
    if role not in allowed:
        raise WorkOrderError(f"moving {current} -> {target} is for {' or '.join(sorted(allowed))}", forbidden=True)


def overdue(status: str, reply_due: datetime, resolve_due: datetime, now: datetime) -> bool:
    """Past its reply deadline without a reply, or past its resolution deadline and not closed."""
    return (status in OPEN and now > reply_due) or (status != "closed" and now > resolve_due)


@dataclass(frozen=True, slots=True)
class NewOrder:
    category: str
    description: str
    contact: str | None


def read_new(fields: Mapping[str, Any], policy: Policy) -> NewOrder:
    """A create request's own fields, checked; the special customer is never taken from it."""
    orders = settings_of(policy)
    category = str(fields.get("category") or "").strip()
    if not category:
        raise WorkOrderError(f"category is missing; one of: {', '.join(orders.categories)}")
    if category not in orders.categories:
        raise WorkOrderError(f"unknown category {category[:40]!r}; one of: {', '.join(orders.categories)}")
    description = str(fields.get("description") or fields.get("text") or "").strip()
    if not description:
        raise WorkOrderError("description is missing")
    if len(description) > orders.description_max_chars:
        raise WorkOrderError(f"description is {len(description)} characters; at most {orders.description_max_chars}")
    if "\x00" in description:
        raise WorkOrderError("description contains a NUL character")
    contact = str(fields.get("contact") or "").strip() or None
    return NewOrder(category, description, contact)


def check_contact(contact: str, caller: str, orders: WorkOrderSettings) -> None:
    """A reply SMS goes to the customer: the order's caller, or a number of a kind and region the
    policy allows (domestic mobiles by default)."""
    if contact == caller:
        return
    region, kind = number_kind(contact)
    if region not in orders.contact_regions or kind not in orders.contact_kinds:
        allowed = f"{' or '.join(orders.contact_kinds)} numbers of {', '.join(orders.contact_regions)}"
        raise WorkOrderError(f"contact {contact} is a {kind.replace('_', ' ')} number of "
                             f"{region or 'no country'}: a reply may go to the caller or to {allowed} only")


def reply_text(reply: str, order_id: int, orders: WorkOrderSettings) -> str:
    """The SMS carrying `reply`, checked against the policy's bounds (pure)."""
    reply = reply.strip()
    if not reply:
        raise WorkOrderError("a reply to the customer needs its text (reply)")
    if len(reply) > orders.reply_max_chars:
        raise WorkOrderError(f"the reply is {len(reply)} characters; at most {orders.reply_max_chars}")
    if unstorable(reply) or any(c in reply for c in "\ufffe\uffff"):
        raise WorkOrderError("the reply contains a character no SMS can carry (NUL or a lone surrogate)")
    text = orders.reply_sms.format(order=order_id, reply=reply)
    parts = sms_parts(text)
    if parts > orders.reply_max_parts:
        raise WorkOrderError(f"the reply's SMS would take {parts} parts; at most {orders.reply_max_parts}: "
                             "shorten the reply")
    return text


@dataclass(frozen=True, slots=True)
class Filters:
    special: str | None = None
    status: str | None = None
    category: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    overdue: bool = False
    number: str | None = None

    def checked(self) -> Filters:
        if self.special is not None and self.special not in SPECIAL_CUSTOMERS:
            raise WorkOrderError(f"special customer {self.special!r}: one of {', '.join(SPECIAL_CUSTOMERS)}")
        if self.status is not None and self.status not in STATUSES:
            raise WorkOrderError(f"status {self.status!r}: one of {', '.join(STATUSES)}")
        return self


def visible_to(role: str, user: str, caller: str | None) -> tuple[str, list[Any]]:
    """The SQL condition (and its values, numbered from $1) for the orders a person may see: an
    agent the orders they created and those of the caller on their screen; handlers and
    supervisors all of them."""
    if role == "agent":
        return ("(created_by = $1 OR number = $2)", [user, caller or ""])
    return ("TRUE", [])
