"""Every Redis key and channel the hotline uses, spelled once.

Readers and writers (the call path, the AMI listeners, the SMS workers, the pages, the CLI and
the tests) take their key names from one `RedisKeys(prefix)`, so a key cannot be written under
one spelling and read under another. The prefix (`HOTLINE_REDIS_PREFIX`, default `hl`) lets
several hotlines, or tests, share one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    # -- tier tables (how they are bucketed: tier_lookup/layout.py) --------------------------
    @property
    def tables(self) -> str:
        """Hash: table -> its live generation (`gen|buckets|columns`)."""
        return f"{self.prefix}:tables"

    @property
    def generation_counter(self) -> str:
        return f"{self.prefix}:gen"

    def table_info(self, table: str) -> str:
        return f"{self.prefix}:tableinfo:{table}"

    def table_staging(self, table: str) -> str:
        return f"{self.prefix}:staging:{table}"

    def table_lock(self, table: str) -> str:
        return f"{self.prefix}:lock:{table}"

    @property
    def bucket_stem(self) -> str:
        """What every bucket key starts with; the lookup script appends `table:gen:bucket`."""
        return f"{self.prefix}:t:"

    def table_bucket(self, table: str, gen: int, bucket: int) -> str:
        return f"{self.bucket_stem}{table}:{gen}:{bucket}"

    # -- calls ------------------------------------------------------------------------------
    def call(self, uniqueid: str) -> str:
        """Hash: the call record written at call entry (agi/records.py)."""
        return f"{self.prefix}:call:{uniqueid}"

    def call_by_linkedid(self, linkedid: str) -> str:
        return f"{self.prefix}:call:linked:{linkedid}"

    @property
    def records_outbox(self) -> str:
        """Stream: facts about calls (entry decision, IVR end, SMS outcome) waiting to be written
        to the records database; the recorder deletes what it has committed."""
        return f"{self.prefix}:records:outbox"

    # -- agents and their screens -----------------------------------------------------------
    @property
    def roster(self) -> str:
        """Hash: agent id -> the agent as JSON."""
        return f"{self.prefix}:agents"

    @property
    def agent_secrets(self) -> str:
        return f"{self.prefix}:agents:secrets"

    @property
    def staff(self) -> str:
        """Hash: handler or supervisor id -> JSON {role, secret} (agents sign in by the roster)."""
        return f"{self.prefix}:staff"

    def screen_channel(self, agent_id: str) -> str:
        """Pub/sub channel: cards for one agent's screen, whichever instance holds it."""
        return f"{self.prefix}:screen:{agent_id}"

    def screen_call(self, agent_id: str) -> str:
        """The uniqueid of the call last connected to this agent (the caller on their screen)."""
        return f"{self.prefix}:screen:call:{agent_id}"

    def user_sessions(self, user: str) -> str:
        """Set: the session tokens of one person, so a new secret or a removal ends them all."""
        return f"{self.prefix}:screen:sessions:{user}"

    def sign_in_failures(self, who: str) -> str:
        """Counter of refused sign-ins (`pair:ID@IP`, `user:ID` or `addr:IP`) in the current window."""
        return f"{self.prefix}:signin:fail:{who}"

    def sign_in_wait(self, who: str) -> str:
        """Present while sign-ins of `who` (as above) must wait; its TTL says how long."""
        return f"{self.prefix}:signin:wait:{who}"

    def sign_in_known(self, user: str, address: str) -> str:
        """Present while `address` is one `user` signed in from lately."""
        return f"{self.prefix}:signin:known:{user}@{address}"

    def screen_session(self, token: str) -> str:
        return f"{self.prefix}:screen:session:{token}"

    # -- SMS --------------------------------------------------------------------------------
    @property
    def sms_jobs(self) -> str:
        """Stream: accepted SMS jobs, read by the workers' consumer group."""
        return f"{self.prefix}:sms:jobs"

    @property
    def sms_dead(self) -> str:
        return f"{self.prefix}:sms:dead"

    @property
    def sms_counts(self) -> str:
        return f"{self.prefix}:sms:counts"

    @property
    def sms_optout(self) -> str:
        return f"{self.prefix}:sms:optout"

    def sms_state(self, job_id: str) -> str:
        return f"{self.prefix}:sms:state:{job_id}"

    def sms_post_call(self, linkedid: str) -> str:
        """The once-per-call marker of a post-call SMS (holds the job id)."""
        return f"{self.prefix}:sms:postcall:{linkedid}"

    def sms_order_reply(self, reply: str) -> str:
        """The once-per-reply marker of a work order's reply SMS (`order:replied-at`)."""
        return f"{self.prefix}:sms:orderreply:{reply}"

    def quota(self, what: str, who: str, window: int) -> str:
        """Counter: how many `what` (SMS to a number, orders by a person, ...) in one fixed window."""
        return f"{self.prefix}:quota:{what}:{who}:{window}"

    # -- flows ------------------------------------------------------------------------------
    @property
    def flows_reload(self) -> str:
        """Pub/sub channel: `hotline flows reload` asks every instance to reload."""
        return f"{self.prefix}:flows:reload"
