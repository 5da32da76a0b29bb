"""The answer to a follow-up DM (Attended, No-show, Book follow-up) lives in the services layer,
`sync.services.followups`, which the chat front ends call; it is named here too, among the
reminder parts it belongs with."""

from sync.services.followups import FOLLOWUP_ANSWERS, FollowupAnswer, FollowupOutcome, answer_followup

__all__ = ["FOLLOWUP_ANSWERS", "FollowupAnswer", "FollowupOutcome", "answer_followup"]
