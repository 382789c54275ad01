"""Work orders over HTTP: the JSON API for the agent's screen and the operator's other systems,
and the back-office pages for complaint handlers and supervisors. The sign-in and the role
check come before any of this (hotline.web.access); here, who sees which order."""

from __future__ import annotations

import asyncio
import html
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from redis.asyncio import Redis

from agi.records import CallRecords
from hotline.web.access import principal_of
from hotline.web.auth import Principal
from hotline.workorders.rules import (
    MOVES,
    SPECIAL_CUSTOMERS,
    STATUS_LABELS,
    STATUSES,
    Filters,
    WorkOrderError,
    settings_of,
)
from hotline.workorders.service import WorkOrderService
from hotline.workorders.store import as_json
from hotline_core.export import CSV_START, XlsxSheet, csv_lines
from hotline_core.keys import RedisKeys
from hotline_core.policy import Policy
from hotline_core.text import unstorable

PER_PAGE = 100  # orders on a page of the list (and of the API, unless per_page says otherwise)
PER_PAGE_MAX = 500


@dataclass(frozen=True, slots=True)
class Page:
    orders: list[dict[str, Any]]
    total: int  # matching orders in all
    number: int  # from 1
    size: int


def _paging(query: Any) -> tuple[int, int]:
    """(page, per_page) from the query, checked (pure)."""
    try:
        number = int(query.get("page") or 1)
        size = int(query.get("per_page") or PER_PAGE)
    except ValueError:
        raise WorkOrderError("page and per_page are whole numbers") from None
    if number < 1 or number > 1_000_000 or not 1 <= size <= PER_PAGE_MAX:
        raise WorkOrderError(f"page from 1; per_page from 1 to {PER_PAGE_MAX}")
    return number, size


# The exports are for people: the handler's words and labels, not the API's keys and codes.
EXPORT_COLUMNS = (("id", "工单号"), ("created_at", "创建时间"), ("special_label", "特殊客户"),
                  ("category_label", "类别"), ("status_label", "状态"), ("priority", "优先级"),
                  ("reply_due", "答复期限"), ("resolve_due", "办结期限"), ("overdue_label", "超时"),
                  ("number", "来电号码"), ("contact", "联系号码"), ("linkedid", "通话编号"),
                  ("created_by", "创建人"), ("description", "内容"), ("reply", "答复"), ("replied_at", "答复时间"))
EXPORT_DATES = frozenset({"created_at", "reply_due", "resolve_due", "replied_at"})
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


CREATE_FIELDS = ("number", "linkedid", "call", "category", "description", "text", "contact", "request_key")
MOVE_FIELDS = ("status", "note", "reply")


async def _read_json(request: web.Request, text_fields: tuple[str, ...]) -> dict[str, Any] | web.Response:
    """The request's JSON object, its named fields text (or absent) without NUL characters; or
    the answer that says what was wrong with it."""
    if request.content_type != "application/json":
        return _json({"error": "send a JSON object with Content-Type: application/json"}, 415)
    try:
        fields = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _json({"error": "the body must be a JSON object"}, 400)
    if not isinstance(fields, dict):
        return _json({"error": "the body must be a JSON object"}, 400)
    for name in text_fields:
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return _json({"error": f"{name} must be text, not {type(value).__name__}"}, 400)
        if unstorable(value):
            return _json({"error": f"{name} contains a NUL character or a lone surrogate"}, 400)
    return fields


def _order_id(request: web.Request) -> int:
    """The order number in the path (digits, by the route); one past PostgreSQL's bigint is no order."""
    text = request.match_info["id"]
    if len(text) > 18:
        raise WorkOrderError(f"no work order {text[:24]}")
    return int(text)


def _problem(exc: WorkOrderError) -> web.Response:
    if exc.retry_after_s:
        response = _json({"error": str(exc)}, 429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    return _json({"error": str(exc)}, 403 if exc.forbidden else 422 if exc.conflict else 400)


class WorkOrderPages:
    def __init__(self, service: WorkOrderService, redis: Redis, prefix: str, records: CallRecords, policy: Policy):
        self._service = service
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._records = records
        self._policy = policy
        self._page = resources.files("hotline.workorders").joinpath("orders.html").read_text(encoding="utf-8")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/workorders", self._create), web.get("/api/workorders", self._list),
                web.get(r"/api/workorders/{id:\d+}", self._get),
                web.post(r"/api/workorders/{id:\d+}/status", self._move),
                web.get("/api/screen/caller", self._screen_caller),
                web.get("/workorders", self._list_page), web.get(r"/workorders/{id:\d+}", self._detail_page),
                web.post(r"/workorders/{id:\d+}/move", self._move_form)]

    # -- who -----------------------------------------------------------------------------
    @staticmethod
    def _who(request: web.Request) -> Principal:
        principal = principal_of(request)
        if principal is None:  # the middleware's rules put every route here behind a sign-in
            raise web.HTTPUnauthorized(text="sign in first\n")
        return principal

    async def _screen_uniqueid(self, agent: str) -> str | None:
        found = await self._redis.get(self._keys.screen_call(agent))
        return str(found) if found else None

    async def _screen_number(self, principal: Principal) -> str | None:
        """The number of the caller on an agent's screen (agents may see that caller's orders)."""
        if principal.role != "agent":
            return None
        uniqueid = await self._screen_uniqueid(principal.user)
        record = await self._records.get(uniqueid) if uniqueid else None
        return str(record.identity.get("number") or "") or None if record else None

    async def _visible(self, principal: Principal, order: dict[str, Any]) -> bool:
        if principal.role != "agent":
            return True
        mine: bool = order["created_by"] == principal.user
        return mine or order["number"] == await self._screen_number(principal)

    # -- API -----------------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.StreamResponse:
        principal = self._who(request)
        fields = await _read_json(request, CREATE_FIELDS)
        if isinstance(fields, web.Response):
            return fields
        key = request.headers.get("Idempotency-Key") or fields.get("request_key")
        if key is not None and ("\x00" in str(key) or not str(key).strip()):
            return _json({"error": "Idempotency-Key must be text without NUL characters"}, 400)
        try:
            note = ""
            if principal.role == "agent":
                # An agent files for the caller on their screen; the call fixes who it is.
                call = str(fields.get("call") or await self._screen_uniqueid(principal.user) or "")
                if not call or call != await self._screen_uniqueid(principal.user):
                    raise WorkOrderError("agents file orders for the call on their screen", forbidden=True)
                caller = await self._service.caller_of_call(call)
            else:
                caller, note = await self._service.caller_of(fields.get("linkedid"), fields.get("number"))
            order, created = await self._service.create(caller, fields, principal.user, principal.role,
                                                        str(key) if key else None)
        except WorkOrderError as exc:
            return _problem(exc)
        if note:
            order["note"] = note
        return _json(order, 201 if created else 200)

    def _filters(self, query: Any) -> Filters:
        def day(name: str) -> date | None:
            text = query.get(name)
            if not text:
                return None
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise WorkOrderError(f"{name} {text[:20]!r} is not a date (YYYY-MM-DD)") from None
            if not date(2000, 1, 1) <= day <= date(2999, 12, 31):
                raise WorkOrderError(f"{name} {text[:20]!r}: a date from 2000-01-01 to 2999-12-31")
            return day

        zone = self._policy.zone
        since, until = day("from"), day("to")
        return Filters(
            special=query.get("special") or None, status=query.get("status") or None,
            category=query.get("category") or None,
            since=datetime.combine(since, time(), zone) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), zone) if until else None,
            overdue=query.get("overdue") in ("1", "true", "yes", "on")).checked()

    async def _page_of(self, request: web.Request) -> Page:
        """The page of orders the query asks for (`page` from 1, `per_page` up to PER_PAGE_MAX)."""
        principal = self._who(request)
        number, size = _paging(request.query)
        rows, total = await self._service.store.find(self._filters(request.query), principal.role, principal.user,
                                                     await self._screen_number(principal), self._service.now(),
                                                     limit=size, offset=(number - 1) * size)
        return Page([_public(row, self._service, self._policy) for row in rows], total, number, size)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        fmt = request.query.get("format", "json")
        if fmt not in CONTENT_TYPES:
            return _json({"error": f"format {fmt[:10]!r}: json, csv or xlsx"}, 400)
        try:
            if fmt != "json":
                return await self._export(request, fmt)
            page = await self._page_of(request)
        except WorkOrderError as exc:
            return _problem(exc)
        # A page of the list; how many there are, and where the next page is, in the headers.
        response = _json(page.orders)
        response.headers["X-Total-Count"] = str(page.total)
        if page.number * page.size < page.total:
            following = urlencode({**request.query, "page": page.number + 1, "per_page": page.size})
            response.headers["Link"] = f'</api/workorders?{following}>; rel="next"'
        return response

    async def _export(self, request: web.Request, fmt: str) -> web.StreamResponse:
        """Every matching order, whatever their number, read a batch at a time: CSV written as it
        is read, XLSX built in write-only mode."""
        principal = self._who(request)
        batches = self._service.store.every(self._filters(request.query), principal.role, principal.user,
                                            await self._screen_number(principal), self._service.now())
        headers = {"Content-Type": CONTENT_TYPES[fmt],
                   "Content-Disposition": f'attachment; filename="workorders.{fmt}"'}
        if fmt == "xlsx":
            sheet = XlsxSheet(EXPORT_COLUMNS, "工单", EXPORT_DATES)
            async for rows in batches:
                sheet.add([_public(row, self._service, self._policy) for row in rows])
            return web.Response(body=await asyncio.to_thread(sheet.save), headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await response.write(CSV_START + csv_lines(EXPORT_COLUMNS, [], header=True))
        async for rows in batches:
            await response.write(csv_lines(EXPORT_COLUMNS, [_public(row, self._service, self._policy) for row in rows]))
        await response.write_eof()
        return response

    async def _get(self, request: web.Request) -> web.StreamResponse:
        principal = self._who(request)
        try:
            order = await self._service.get(_order_id(request))
        except WorkOrderError as exc:
            return _json({"error": str(exc)}, 404)
        if not await self._visible(principal, order):
            return _json({"error": "not your order"}, 403)
        order["events"] = [dict(e) for e in await self._service.store.events(order["id"])]
        return _json(order)

    async def _move(self, request: web.Request) -> web.StreamResponse:
        principal = self._who(request)
        fields = await _read_json(request, MOVE_FIELDS)
        if isinstance(fields, web.Response):
            return fields
        try:
            order = await self._service.move(_order_id(request), str(fields.get("status", "")),
                                             principal.user, principal.role, str(fields.get("note") or "")[:500],
                                             fields.get("reply"))
        except WorkOrderError as exc:
            return _problem(exc)
        return _json(order)

    async def _screen_caller(self, request: web.Request) -> web.StreamResponse:
        """For the agent's screen: the caller on it, their last calls and their open orders."""
        principal = self._who(request)
        uniqueid = await self._screen_uniqueid(principal.user)
        if uniqueid is None:
            return _json({"call": None})
        try:
            caller = await self._service.caller_of_call(uniqueid)
        except WorkOrderError:
            return _json({"call": None})
        calls, orders = await self._service.store.history(caller.number)
        zone = self._policy.zone

        def local(row: Any) -> dict[str, Any]:
            return {k: v.astimezone(zone).isoformat(timespec="seconds") if isinstance(v, datetime) else v
                    for k, v in dict(row).items()}

        return _json({"call": uniqueid, "linkedid": caller.linkedid, "number": caller.number,
                      "special_customer": caller.tier, "special_label": caller.label,
                      "categories": settings_of(self._policy).categories,
                      "calls": [local(c) for c in calls], "orders": [local(o) for o in orders]})

    # -- pages ---------------------------------------------------------------------------
    async def _list_page(self, request: web.Request) -> web.StreamResponse:
        principal = self._who(request)
        try:
            page = await self._page_of(request)
            error = ""
        except WorkOrderError as exc:
            page, error = Page([], 0, 1, PER_PAGE), str(exc)
        orders = page.orders
        query = {k: v for k, v in request.query.items() if k != "format"}
        rows = "".join(
            f'<tr data-id="{o["id"]}" class="{"overdue" if o["overdue"] else ""}">'
            f'<td><a href="/workorders/{o["id"]}">{o["id"]}</a></td><td class="special">{_h(o["special_label"])}</td>'
            f'<td>{_h(o["category_label"])}</td><td>{_h(o["status"])}</td><td>{o["priority"]}</td>'
            f'<td>{_h(o["reply_due"])}</td><td>{"overdue" if o["overdue"] else ""}</td><td>{_h(o["number"])}</td>'
            f'<td>{_h(o["description"][:60])}</td></tr>' for o in orders)
        options = {
            "special": [("", "all"), *[(t, self._policy.tier_label(t)) for t in SPECIAL_CUSTOMERS]],
            "status": [("", "all"), *[(s, s) for s in STATUSES]],
            "category": [("", "all"), *settings_of(self._policy).categories.items()],
        }
        selects = "".join(
            f'<label>{name} <select name="{name}">'
            + "".join(f'<option value="{_h(v)}"{" selected" if request.query.get(name, "") == v else ""}>{_h(t)}'
                      f'</option>' for v, t in choices) + "</select></label> " for name, choices in options.items())
        exports = " ".join(f'<a href="/api/workorders?{urlencode({**query, "format": f})}">{f.upper()}</a>'
                           for f in ("csv", "xlsx"))
        body = (f'<form method="get" action="/workorders">{selects}'
                f'<label>from <input type="date" name="from" value="{_h(request.query.get("from", ""))}"></label> '
                f'<label>to <input type="date" name="to" value="{_h(request.query.get("to", ""))}"></label> '
                f'<label><input type="checkbox" name="overdue" value="1"'
                f'{" checked" if request.query.get("overdue") else ""}> overdue</label> '
                f'<button type="submit">filter</button></form>'
                f'<p class="error">{_h(error)}</p><p>{page.total} order(s){self._pager(query, page)} · '
                f'export {exports}</p>'
                '<table id="orders"><thead><tr><th>#</th><th>特殊客户</th><th>category</th><th>status</th>'
                '<th>priority</th><th>reply due</th><th></th><th>number</th><th>description</th></tr></thead>'
                f'<tbody>{rows}</tbody></table>')
        return self._html("Work orders", principal, body)

    @staticmethod
    def _pager(query: dict[str, str], page: Page) -> str:
        """' · page 2 of 7' with links to the neighbouring pages, when there is more than one."""
        pages = max(1, -(-page.total // page.size))
        if pages == 1:
            return ""

        def link(number: int, text: str) -> str:
            return f'<a href="/workorders?{_h(urlencode({**query, "page": number}))}">{text}</a>'

        earlier = f" {link(page.number - 1, '← previous')}" if page.number > 1 else ""
        later = f" {link(page.number + 1, 'next →')}" if page.number < pages else ""
        return f" · page {page.number} of {pages}{earlier}{later}"

    async def _detail_page(self, request: web.Request) -> web.StreamResponse:
        principal = self._who(request)
        try:
            order = await self._service.get(_order_id(request))
        except WorkOrderError:
            raise web.HTTPNotFound(text="no such work order\n") from None
        if not await self._visible(principal, order):
            raise web.HTTPForbidden(text="not your order\n")
        events = await self._service.store.events(order["id"])
        trail = "".join(f"<li>{_h(e['at'].astimezone(self._policy.zone).isoformat(timespec='seconds'))} "
                        f"{_h(e['actor'])} ({_h(e['role'])}): {_h(e['action'])} "
                        f"{_h(e['from_status'] or '')} → {_h(e['to_status'] or '')} {_h(e['note'] or '')}</li>"
                        for e in events)
        moves = [to for (frm, to), roles in MOVES.items() if frm == order["status"] and principal.role in roles]
        form = "" if not moves else (
            f'<form method="post" action="/workorders/{order["id"]}/move"><select name="status">'
            + "".join(f'<option value="{m}">{m}</option>' for m in moves)
            + '</select> <input name="note" placeholder="note"> <textarea name="reply" '
              'placeholder="reply to the customer (sent by SMS when the order is replied)"></textarea>'
              '<button type="submit">move</button></form>')
        shown = {k: "-" if v is None else v for k, v in order.items()}
        fields = "".join(f'<dt>{_h(k)}</dt><dd id="order-{k}">{_h(shown.get(k, "-"))}</dd>'
                         for k in ("id", "special_label", "special_customer", "linkedid", "number", "contact",
                                   "category", "status", "priority", "reply_due", "resolve_due", "overdue",
                                   "created_by", "created_at", "description", "reply", "reply_sms_job"))
        return self._html(f"Work order {order['id']}", principal,
                          f"<dl>{fields}</dl>{form}<h2>History</h2><ul>{trail}</ul>")

    async def _move_form(self, request: web.Request) -> web.StreamResponse:
        principal = self._who(request)
        form = await request.post()
        try:
            order_id = _order_id(request)
            await self._service.move(order_id, str(form.get("status", "")), principal.user, principal.role,
                                     str(form.get("note") or "")[:500], str(form.get("reply") or "") or None)
        except WorkOrderError as exc:
            problem = _problem(exc)
            return web.Response(status=problem.status, text=f"{exc}\n", headers={
                k: v for k, v in problem.headers.items() if k == "Retry-After"})
        raise web.HTTPSeeOther(f"/workorders/{order_id}")

    def _html(self, title: str, principal: Principal, body: str) -> web.Response:
        who = _h(f"{principal.user} ({principal.role})")
        page = self._page.replace("@@TITLE@@", _h(title)).replace("@@WHO@@", who).replace("@@BODY@@", body)
        return web.Response(text=page, content_type="text/html")


def _h(text: Any) -> str:
    return html.escape(str(text))


def _public(row: Any, service: WorkOrderService, policy: Policy) -> dict[str, Any]:
    order = as_json(row, service.now(), policy.zone)
    order["category_label"] = settings_of(policy).categories.get(order["category"], order["category"])
    order["status_label"] = STATUS_LABELS.get(order["status"], order["status"])
    order["overdue_label"] = "超时" if order["overdue"] else ""
    return order
