"""Work orders as people and systems use them: whose order it is (fixed from the call, never
typed), its handling by tier, status moves, and the reply to the customer by SMS, once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from agi.records import CallRecords
from hotline.workorders.rules import MOVES, WorkOrderError, check_contact, deadlines, read_new, reply_text, settings_of
from hotline.workorders.store import Caller, Request, WorkOrders, as_json
from hotline_core.numbers import NumberPlan, mask_number, normalize_number
from hotline_core.policy import NORMAL, Policy
from hotline_core.quota import Quota

# (marker, number, text) -> the SMS job id, or None if a job was queued under this marker before
ReplySender = Callable[[str, str, str], Awaitable[str | None]]


class WorkOrderService:
    def __init__(self, store: WorkOrders, records: CallRecords, policy: Policy, plan: NumberPlan,
                 clock: Callable[[], datetime], send_reply: ReplySender | None, quota: Quota | None = None):
        self.store = store
        self._records = records
        self._policy = policy
        self._plan = plan
        self._clock = clock
        self._send_reply = send_reply
        self._quota = quota  # None: no quotas (the CLI, run by an operator on the server)

    def now(self) -> datetime:
        return self._clock()

    async def caller_of_call(self, uniqueid: str) -> Caller:
        """The caller of a call that is on an agent's screen (its record in Redis)."""
        record = await self._records.get(uniqueid)
        if record is None or not record.identity.get("number"):
            raise WorkOrderError("that call has no caller on record (withheld number or an expired call)")
        identity = record.identity
        return Caller(str(identity["number"]), str(identity.get("tier", NORMAL)),
                      str(identity.get("label", self._policy.tier_label(NORMAL))), identity.get("level"),
                      record.linkedid)

    async def caller_of(self, linkedid: str | None, number: str | None) -> tuple[Caller, str]:
        """By linkedid (Redis, then the call records) or by number (its last call); a caller with
        no call on record is `normal`, said in the note rather than refused."""
        if linkedid:
            record = await self._records.by_linkedid(linkedid)
            if record is not None:
                return await self.caller_of_call(record.uniqueid), ""
            row = await self.store.recorded_call(linkedid=linkedid)
            if row is None:
                raise WorkOrderError(f"no call with linkedid {linkedid[:40]!r} on record")
            return Caller(row["number"], row["tier"] or NORMAL, row["tier_label"] or self._policy.tier_label(NORMAL),
                          row["level"], row["linkedid"]), ""
        normalised = normalize_number(number or "", self._plan)
        if normalised is None:
            raise WorkOrderError(f"{(number or '')[:40]!r} is not a subscriber number")
        row = await self.store.recorded_call(number=normalised)
        if row is None:
            return (Caller(normalised, NORMAL, self._policy.tier_label(NORMAL), None, None),
                    "no call of this number on record: filed as normal")
        return Caller(normalised, row["tier"] or NORMAL, row["tier_label"] or self._policy.tier_label(NORMAL),
                      row["level"], row["linkedid"]), ""

    async def create(self, caller: Caller, fields: dict[str, Any], actor: str, role: str,
                     request_key: str | None) -> tuple[dict[str, Any], bool]:
        new = read_new(fields, self._policy)
        contact = normalize_number(new.contact, self._plan) if new.contact else None
        if new.contact and contact is None:
            raise WorkOrderError(f"contact {new.contact[:40]!r} is not a phone number")
        orders = settings_of(self._policy)
        if contact is not None:
            check_contact(contact, caller.number, orders)
        await self._take("orders filed", actor, orders.orders_per_person_per_hour, 3600)
        now = self.now()
        due = deadlines(self._policy, caller.tier, caller.level, now)
        request = Request.of(actor, request_key, fields) if request_key else None
        created = False
        try:
            order_id, created = await self.store.create(caller, new.category, new.description, contact, due.priority,
                                                        due.reply_due, due.resolve_due, actor, role, now, request)
        finally:
            if not created and self._quota is not None:  # a replay, or refused: nothing new was filed
                await self._quota.give_back("orders filed", actor, 3600, now.timestamp())
        return await self.get(order_id), created

    async def get(self, order_id: int) -> dict[str, Any]:
        row = await self.store.get(order_id)
        if row is None:
            raise WorkOrderError(f"no work order {order_id}")
        return as_json(row, self.now(), self._policy.zone)

    async def move(self, order_id: int, target: str, actor: str, role: str, note: str = "",
                   reply: str | None = None) -> dict[str, Any]:
        if not any(role in roles for roles in MOVES.values()):
            # Said before the order is read: a refusal must not tell an agent the state of any order.
            raise WorkOrderError(f"the {role} role moves no orders", forbidden=True)
        if target == "replied":
            # The reply goes out as an SMS: checked, and counted against the person's and the
            # customer's quotas, before anything is recorded.
            orders = settings_of(self._policy)
            if reply is not None and not isinstance(reply, str):
                raise WorkOrderError("reply must be the text sent to the customer, not a number or a list")
            reply_text(reply or "", order_id, orders)
            current = await self.store.get(order_id)
            if current is None:
                raise WorkOrderError(f"no work order {order_id}")
            check_contact(current["contact"], current["number"], orders)
            await self._take("replies sent", actor, orders.replies_per_person_per_hour, 3600)
            await self._take("reply SMS to", current["contact"], orders.replies_per_number_per_day, 86400)
        row = await self.store.move(order_id, target, actor, role, note, reply, self.now())
        if target == "replied":
            await self._deliver_reply(row)
        return await self.get(order_id)

    async def _take(self, what: str, who: str, limit: int, window_s: int) -> None:
        if self._quota is None:
            return
        wait = await self._quota.take(what, who, limit, window_s, self.now().timestamp())
        if wait:
            whose = mask_number(who) if who.isdigit() else who
            raise WorkOrderError(f"{what}: {limit} per {'hour' if window_s == 3600 else 'day'} for {whose} "
                                 f"already; try again in {wait} s", retry_after_s=wait)

    async def _deliver_reply(self, order: Any) -> None:
        """Queue the reply's SMS. The marker names this reply (the order and when it was replied),
        so a retry or the sweeper queues it once, and a later reply after a reopen is a new SMS."""
        if self._send_reply is None:
            return
        text = settings_of(self._policy).reply_sms.format(order=order["id"], reply=order["reply"])
        marker = f"{order['id']}:{order['replied_at'].timestamp():.0f}"
        job = await self._send_reply(marker, order["contact"], text)
        if job is not None:
            await self.store.note_reply_sms(order["id"], job)

    async def send_pending_replies(self) -> int:
        """Replies committed but whose SMS was never queued (a crash in between): queue them now."""
        pending = await self.store.replies_without_sms(self.now())
        for order in pending:
            await self._deliver_reply(order)
        return len(pending)
