"""The timeline: every meeting's posts (reading, reminder, questions, summary), planned and sent by themselves.

`plan` (pure: what is due when), `compose` (the text of each post), `deliver` (claims in the post log,
sending once per location, retries, APScheduler jobs)."""

from __future__ import annotations

from circlebot.core.timeline.compose import DirectPost, PostLines, compose
from circlebot.core.timeline.deliver import Timeline, TimelineHost
from circlebot.core.timeline.plan import (
    Job,
    PostKind,
    delivery_key,
    job_key,
    plan,
    syllabus_additions,
    syllabus_fill,
)

__all__ = ["DirectPost", "Job", "PostKind", "PostLines", "Timeline", "TimelineHost", "compose", "delivery_key",
           "job_key", "plan", "syllabus_additions", "syllabus_fill"]
