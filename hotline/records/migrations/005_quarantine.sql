-- What the records could not store: a fact from the call path's outbox or a line of Asterisk's
-- queue_log that fails the checks at the edge or that the database refuses. Kept with the raw
-- input (JSON text: a NUL survives as \u0000) and the reason, so the facts and lines behind it
-- flow on and nothing is dropped silently; `hotline db quarantine` lists them.
CREATE TABLE records_quarantine (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL,
    source  text        NOT NULL,   -- 'outbox' or the queue_log's source name
    raw     text        NOT NULL,
    reason  text        NOT NULL
);
CREATE INDEX records_quarantine_at ON records_quarantine (at);
