-- Complaint work orders: created by an agent during or after a call (or by another system
-- through the API), carrying the caller's tier as the "special customer" field; dispatched,
-- replied to and closed by complaint handlers; every move kept in work_order_events.
CREATE TABLE work_orders (
    id               bigserial   PRIMARY KEY,
    created_at       timestamptz NOT NULL,
    request_key      text        UNIQUE,            -- a retried create (same key) makes no second order
    linkedid         text,                          -- the call it came from, if any
    number           text        NOT NULL,          -- the caller, normalised
    contact          text        NOT NULL,          -- where to reach the customer
    special_customer text        NOT NULL,          -- the tier (highend, newsub, campus, rural, normal)
    special_label    text        NOT NULL,          -- its label, e.g. 农村
    level            text,
    category         text        NOT NULL,
    description      text        NOT NULL,
    status           text        NOT NULL,          -- new | dispatched | replied | closed | reopened
    priority         integer     NOT NULL,
    reply_due        timestamptz NOT NULL,
    resolve_due      timestamptz NOT NULL,
    created_by       text        NOT NULL,
    replied_at       timestamptz,
    closed_at        timestamptz,
    reply            text,
    reply_sms_job    text,                          -- the SMS that carried the reply (sent once)
    updated_at       timestamptz NOT NULL
);
CREATE INDEX work_orders_queue ON work_orders (priority DESC, reply_due, id);
CREATE INDEX work_orders_special ON work_orders (special_customer, created_at);
CREATE INDEX work_orders_number ON work_orders (number, created_at DESC);
CREATE INDEX work_orders_created_by ON work_orders (created_by, created_at DESC);

CREATE TABLE work_order_events (
    id          bigserial   PRIMARY KEY,
    order_id    bigint      NOT NULL REFERENCES work_orders (id),
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    role        text        NOT NULL,
    action      text        NOT NULL,                -- created | moved | replied
    from_status text,
    to_status   text,
    note        text
);
CREATE INDEX work_order_events_order ON work_order_events (order_id, at);
