"""The post-call survey's decisions (pure): who is offered it, and what an answer means.

The call path (agi.survey) asks these at the end of an answered call; the records (the `survey`
fact) keep the result, so the satisfaction figure is satisfied answers over answered surveys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hotline_core.policy import SurveySettings

ANSWERED, NO_ANSWER, INVALID, HUNG_UP = "answered", "no answer", "invalid", "hung up"
RESULTS = (ANSWERED, NO_ANSWER, INVALID, HUNG_UP)


def offered(survey: SurveySettings | None, level: str, call_id: str) -> bool:
    """Whether an answered call of `level` is offered the survey. The sample is drawn from the
    call id (the same call always gets the same answer, on any instance)."""
    if survey is None or not survey.enabled or not call_id:
        return False
    if survey.levels and level not in survey.levels:
        return False
    if survey.share >= 1:
        return True
    draw = int.from_bytes(hashlib.blake2b(call_id.encode(), digest_size=8).digest(), "big") / 2**64
    return draw < survey.share


@dataclass(frozen=True, slots=True)
class SurveyResult:
    result: str  # one of RESULTS
    key: str = ""  # the key pressed when it is on the scale
    label: str = ""
    satisfied: bool | None = None  # None unless answered

    def fields(self) -> dict[str, str]:
        """As the call record and the records outbox hold it."""
        satisfied = "" if self.satisfied is None else ("1" if self.satisfied else "0")
        return {"survey_result": self.result, "survey": self.key, "survey_label": self.label,
                "survey_satisfied": satisfied}


def result(survey: SurveySettings, pressed: str, hung_up: bool) -> SurveyResult:
    """What the caller's last input comes to: a key of the scale is an answer (even if the caller
    then hung up during the thanks); another key is invalid; nothing is no answer, or hung up."""
    answer = survey.scale.get(pressed)
    if answer is not None:
        return SurveyResult(ANSWERED, pressed, answer.label, answer.satisfied)
    if pressed:
        return SurveyResult(INVALID)
    return SurveyResult(HUNG_UP if hung_up else NO_ANSWER)
