-- Call records: one row per call (calls), Asterisk's queue_log as it wrote it (queue_log), one
-- row per queue visit (queue_visits), and how far each queue_log file has been read.
-- The partitioned tables are split by month (hotline.records.db creates the partitions).

CREATE TABLE calls (
    started_at       timestamptz NOT NULL,  -- from the caller channel's uniqueid
    call_id          text        NOT NULL,  -- the caller channel's uniqueid = queue_log's callid
    linkedid         text,
    -- hotline's decision at call entry
    number           text,                  -- normalised, whole (masked only in logs)
    tier             text,
    tier_label       text,
    brand            text,
    level            text,
    queue_priority   integer,
    skill_chain      text[],
    closed_desks     text[],
    access_rule      text,
    matched          text[],
    degraded         boolean,
    lookup_ms        real,
    entered_at       timestamptz,
    route            text,
    -- the IVR
    ivr_result       text,                  -- transfer | hangup | hung up in IVR
    ivr_path         text,
    digits           text,
    service          text,
    flow_version     text,
    -- the queues, recomputed from the call's queue_log rows (a replay changes nothing)
    queue            text,
    queue_entered_at timestamptz,
    visits           integer     NOT NULL DEFAULT 0,
    queue_outcome    text,                  -- answered | abandoned | released | waiting
    agent            text,
    desk             text,
    wait_s           integer,
    talk_s           integer,
    abandon_position integer,
    end_reason       text,
    -- the post-call SMS
    sms_status       text,
    sms_at           timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    outcome          text GENERATED ALWAYS AS (
        CASE WHEN queue_outcome IS NOT NULL THEN queue_outcome
             WHEN ivr_result IN ('hangup', 'hung up in IVR') THEN 'ivr'
             WHEN ivr_result = 'transfer' THEN 'failed'
        END) STORED,
    PRIMARY KEY (started_at, call_id)
) PARTITION BY RANGE (started_at);
CREATE INDEX calls_number ON calls (number, started_at DESC);
CREATE INDEX calls_linkedid ON calls (linkedid);

-- The whole decision with the matched tables' rows, for `hotline calls why`: kept beside the
-- calls so the reports' scans stay narrow.
CREATE TABLE call_details (
    started_at  timestamptz NOT NULL,
    call_id     text        NOT NULL,
    identity    jsonb       NOT NULL,
    PRIMARY KEY (started_at, call_id)
) PARTITION BY RANGE (started_at);

CREATE TABLE queue_log (
    at          timestamptz NOT NULL,
    source      text        NOT NULL,  -- which Asterisk wrote it
    file_key    text        NOT NULL,  -- which file (device:inode, and a mark after a truncation)
    line_offset bigint      NOT NULL,  -- where the line starts: with the two above, its identity
    callid      text        NOT NULL,
    queue       text        NOT NULL,
    agent       text        NOT NULL,
    event       text        NOT NULL,
    data        text[]      NOT NULL,
    PRIMARY KEY (at, source, file_key, line_offset)
) PARTITION BY RANGE (at);
CREATE INDEX queue_log_callid ON queue_log (callid);

CREATE TABLE queue_visits (
    started_at  timestamptz NOT NULL,
    call_id     text        NOT NULL,
    visit       integer     NOT NULL,
    queue       text        NOT NULL,
    entered_at  timestamptz NOT NULL,
    position    integer,
    outcome     text        NOT NULL,
    wait_s      integer,
    talk_s      integer,
    agent       text,
    desk        text,
    reason      text,
    PRIMARY KEY (started_at, call_id, visit)
) PARTITION BY RANGE (started_at);

CREATE TABLE ingest_checkpoints (
    source      text PRIMARY KEY,
    file_key    text        NOT NULL,
    line_offset bigint      NOT NULL,
    bad_lines   bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
