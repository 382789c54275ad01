-- Reports read an hourly rollup of the calls, so a month of a provincial hotline (millions of
-- calls) is summed from a few hundred thousand rows. Writers mark the hours they change in
-- dirty_hours; those hours are recomputed from the calls before a report reads them. The
-- thresholds used (the level's service-level seconds, the short-abandon seconds) are kept per
-- row: a policy change makes those rows stale and they are recomputed too.
CREATE TABLE call_hours (
    hour            timestamptz NOT NULL,
    tier            text        NOT NULL,
    level           text        NOT NULL,
    desk            text        NOT NULL,
    service         text        NOT NULL,
    sl_s            integer     NOT NULL,
    short_s         integer     NOT NULL,
    calls           integer     NOT NULL,
    offered         integer     NOT NULL,
    answered        integer     NOT NULL,
    answered_in_sl  integer     NOT NULL,
    abandoned       integer     NOT NULL,
    short_abandoned integer     NOT NULL,
    released        integer     NOT NULL,
    ivr_only        integer     NOT NULL,
    wait_sum        bigint      NOT NULL,
    talk_sum        bigint      NOT NULL,
    talked          integer     NOT NULL,
    overflowed      integer     NOT NULL,
    sms_delivered   integer     NOT NULL,
    PRIMARY KEY (hour, tier, level, desk, service)
);

CREATE TABLE dirty_hours (hour timestamptz PRIMARY KEY);

-- Calls recorded before this migration: their hours are built by the first report.
INSERT INTO dirty_hours SELECT DISTINCT date_trunc('hour', started_at) FROM calls ON CONFLICT DO NOTHING;
