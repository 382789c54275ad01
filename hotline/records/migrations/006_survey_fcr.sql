-- Measured service (satisfaction and first-contact resolution), per call and in the rollups.
--
-- The post-call survey's answer joins the call (a `survey` fact): its result (answered | no
-- answer | invalid | hung up; NULL: not offered), the key and its label, whether the scale
-- counts it as satisfied, and the agent it rates. `fcr` is decided by the rollup's writer once
-- the policy's window has passed after an answered call: true when the number reached no agent
-- again and no work order was filed about the call within it; NULL while pending.
ALTER TABLE calls
    ADD COLUMN survey_result    text,
    ADD COLUMN survey           text,
    ADD COLUMN survey_label     text,
    ADD COLUMN survey_satisfied boolean,
    ADD COLUMN survey_agent     text,
    ADD COLUMN survey_at        timestamptz,
    ADD COLUMN fcr              boolean;
-- The answered calls still waiting for their verdict: the writer's scan, kept small.
CREATE INDEX calls_fcr_pending ON calls (started_at)
    WHERE queue_outcome = 'answered' AND fcr IS NULL AND number IS NOT NULL;

ALTER TABLE call_hours
    ADD COLUMN survey_offered integer NOT NULL DEFAULT 0,
    ADD COLUMN surveyed       integer NOT NULL DEFAULT 0,
    ADD COLUMN satisfied      integer NOT NULL DEFAULT 0,
    ADD COLUMN fcr_decided    integer NOT NULL DEFAULT 0,
    ADD COLUMN fcr_resolved   integer NOT NULL DEFAULT 0;

-- The same counts per agent and hour: `hotline agents kpis` and `report --by agent` read three
-- months of a provincial hotline from a few hundred thousand rows. Rebuilt with call_hours (the
-- same dirty and stale hours, by the same writer).
CREATE TABLE agent_hours (
    hour            timestamptz NOT NULL,
    agent           text        NOT NULL,
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
    survey_offered  integer     NOT NULL,
    surveyed        integer     NOT NULL,
    satisfied       integer     NOT NULL,
    fcr_decided     integer     NOT NULL,
    fcr_resolved    integer     NOT NULL,
    PRIMARY KEY (hour, agent)
);

-- Every re-staffing of the virtual desks from the measurements: who or what applied it, when,
-- and what changed. A scheduled one runs once per period, whichever instance gets there first.
CREATE TABLE desk_evaluations (
    id          bigserial   PRIMARY KEY,
    applied_at  timestamptz NOT NULL,
    applied_by  text        NOT NULL,      -- a person (`--apply`), or 'schedule'
    period      text,                      -- the scheduled period, e.g. 2026-12
    changes     jsonb       NOT NULL
);
CREATE UNIQUE INDEX desk_evaluations_period ON desk_evaluations (period) WHERE applied_by = 'schedule';

-- Every hour rebuilt once, with the new counts and its agents.
INSERT INTO dirty_hours SELECT DISTINCT date_trunc('hour', started_at) FROM calls ON CONFLICT DO NOTHING;
