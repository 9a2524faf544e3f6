"""`poll`, `poll close`, `poll results`, `vote` and `unvote`, and the votes and ends of platforms' native polls
(handled by the poll lifecycle, `core.polls`)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import timedelta

from circlebot.core.adapter import PollLimits
from circlebot.core.commands import FLAG, HOURS, NUMBER, POLL, TEXT, Command, Param, Reply, UsageError
from circlebot.core.context import Bot, Context, EventHandler
from circlebot.core.domain import PollEndCast, PollReadBack, VoteCast
from circlebot.core.polls import results_text
from circlebot.core.text import fold
from circlebot.store import PollClosed, PollRow
from circlebot.store.db import Pending

MAX_QUESTION = 300
MAX_ANSWERS = 20
MAX_ANSWER = 100


async def _poll_here(ctx: Context, poll_id: int) -> PollRow:
    poll = await ctx.store.poll(poll_id)
    if poll is None or poll.circle != ctx.circle.slug:
        raise UsageError(f"there is no poll #{poll_id} in {ctx.circle.name}.")
    return poll


async def open_poll(ctx: Context, question: str, answers: tuple[str, ...], multi: bool, hours: float | None,
                    secret: bool) -> str | Reply:
    problems: list[str] = []
    platforms = ctx.bot.poll_limits(ctx.circle)
    # each limit is stated once: the strictest of the bot's own and the circle's platforms' (naming the platform)
    most_chars, chars_by = min([(MAX_QUESTION, ""), *((lim.question_chars, p) for p, lim in platforms)])
    most_answers, answers_by = min([(MAX_ANSWERS, ""), *((lim.answers, p) for p, lim in platforms)])
    answer_chars, answer_by = min([(MAX_ANSWER, ""), *((lim.answer_chars, p) for p, lim in platforms)])
    if len(question) > most_chars:
        problems.append(f"{chars_by} allows questions of at most {most_chars} characters" if chars_by else
                        f"the question is {len(question)} characters; the most is {most_chars}")
    if len(answers) < 2:
        problems.append("a poll needs at least two answers, each in quotes")
    if len(answers) > most_answers:
        problems.append(f"{answers_by} allows at most {most_answers} answers" if answers_by else
                        f"{len(answers)} answers; the most is {most_answers}")
    if len({fold(a) for a in answers}) != len(answers):
        problems.append("two answers are the same")
    long = [i for i, a in enumerate(answers, 1) if len(a) > answer_chars]
    if long and answer_by:
        problems.append(f"{answer_by} allows answers of at most {answer_chars} characters "
                        f"(too long: answer {', '.join(map(str, long))})")
    elif long:
        problems += [f"answer {i} is {len(answers[i - 1])} characters; the most is {answer_chars}" for i in long]
    for platform, limits in platforms:
        if hours is not None and not limits.min_hours <= hours <= limits.max_hours:
            problems.append(f"{platform} polls last between {limits.min_hours:g} and {limits.max_hours:g} hours")
    if problems:
        raise UsageError("; ".join(dict.fromkeys(problems)) + ".")
    note = ""
    if hours is None:  # a platform whose polls end by themselves (Discord: 32 days) sets the poll's end for all
        capped = [(limits.max_hours, platform) for platform, limits in ctx.bot.poll_limits(ctx.circle)
                  if limits.max_hours < PollLimits().max_hours]
        if capped:
            hours, platform = min(capped)
            note = f" It closes in {hours / 24:g} days, the longest {platform} allows."
    closes_at = ctx.now + timedelta(hours=hours) if hours else None
    poll = await ctx.store.create_poll(
        ctx.circle.slug, question, answers, multi=multi, secret=secret, opened_by=ctx.member_id,
        now=ctx.now, closes_at=closes_at,
    )
    refs, failed = await ctx.bot.polls.start_poll(ctx.circle, poll)
    if not refs:  # nowhere to vote: no poll is left behind, and the organiser learns what to fix
        await ctx.store.delete_poll(poll.id)
        why = " ".join(f"{f}." for f in failed) or "No platform of this circle is running."
        return Reply(f"The poll was not opened. {why}", private=True)
    if closes_at is not None:
        await ctx.bot.changed(ctx.circle)
    where = ", ".join(sorted({r.channel.platform for r in refs}))
    how = f"`{ctx.bot.polls.vote_hint(ctx.invocation.channel.platform, poll.id)}`"
    how += " (several numbers allowed)" if multi else ""
    not_there = "".join(f" Not everywhere: {f}." for f in failed)
    return f"Poll #{poll.id} is open on {where}. Vote with {how}.{note}{not_there}"


async def close(ctx: Context, poll: int) -> str:
    p = await _poll_here(ctx, poll)
    results = await ctx.bot.polls.close_poll(p)
    if results is None:
        raise UsageError(f"poll #{poll} is already closed; {_results_hint(ctx, poll)} shows its results.")
    return results_text(results)


def _results_hint(ctx: Context, poll: int) -> str:
    command = ctx.bot.commands.get(("poll", "results"))
    return f"`{ctx.syntax.example(command, poll=poll)}`" if command else "its results"


async def results(ctx: Context, poll: int) -> Reply:
    p = await _poll_here(ctx, poll)
    tally = await ctx.bot.polls.tally(p)
    hide = p.secret and not p.closed
    text = results_text(tally, hide_counts=hide)
    if not hide:
        return Reply(text)
    mine = await ctx.store.ballot_of(p.id, ctx.member_id)
    if mine:
        text += "\nYour vote: " + ", ".join(p.answers[a] for a in mine)
    return Reply(text, private=True)


async def vote(ctx: Context, poll: int, answers: tuple[int, ...]) -> Reply:
    p = await _poll_here(ctx, poll)
    if p.over(ctx.now):
        raise UsageError(f"poll #{poll} is closed; {_results_hint(ctx, poll)} shows its results.")
    bad = [n for n in answers if not 1 <= n <= len(p.answers)]
    if bad:
        raise UsageError(f"poll #{poll} has answers 1 to {len(p.answers)}; {', '.join(map(str, bad))} is not one.")
    chosen = tuple(dict.fromkeys(n - 1 for n in answers))
    if len(chosen) > 1 and not p.multi:
        raise UsageError(f"poll #{poll} takes one answer; give one number.")
    try:
        await ctx.store.record_vote(p.id, ctx.member_id, chosen, ctx.now)
    except PollClosed:  # closed (by another process) after the check above, before the ballot reached the database
        raise UsageError(f"poll #{poll} is closed; {_results_hint(ctx, poll)} shows its results.") from None
    picked = ", ".join(p.answers[a] for a in chosen)
    return Reply(f"{ctx.user.display}, your vote in poll #{p.id} is counted: {picked}.", private=p.secret)


async def unvote(ctx: Context, poll: int) -> Reply:
    p = await _poll_here(ctx, poll)
    if p.over(ctx.now):
        raise UsageError(f"poll #{poll} is closed.")
    if not await ctx.store.ballot_of(p.id, ctx.member_id):
        return Reply(f"{ctx.user.display}, you have no vote in poll #{p.id}: nothing to withdraw.", private=True)
    try:
        await ctx.store.record_vote(p.id, ctx.member_id, (), ctx.now)
    except PollClosed:
        raise UsageError(f"poll #{poll} is closed.") from None
    return Reply(f"{ctx.user.display}, your vote in poll #{p.id} is withdrawn.", private=p.secret)


COMMANDS = [
    Command(("poll",), "Open a poll: the question, then each answer, in quotes.", open_poll,
            (Param("question", TEXT, "the question, in quotes"),
             Param("answers", TEXT, "two or more answers, each in quotes", greedy=True),
             Param("multi", FLAG, "members may pick several answers", option=True),
             Param("hours", HOURS, "close by itself after this many hours", required=False, option=True),
             Param("secret", FLAG, "hide counts until the poll closes", option=True)),
            organiser=True,
            examples=('poll "Next reading?" "Bolivia 2003" "Something else" --hours 48',)),
    Command(("poll", "close"), "Close a poll now and post its results.", close,
            (Param("poll", POLL, "the poll's number"),), organiser=True),
    Command(("poll", "results"), "The results so far (a secret poll's counts show once it closes).", results,
            (Param("poll", POLL, "the poll's number"),)),
    Command(("vote",), "Vote in a poll by answer number(s).", vote,
            (Param("poll", POLL, "the poll's number"),
             Param("answers", NUMBER, "the answer number(s)", greedy=True)),
            examples=("vote 1 2",)),
    Command(("unvote",), "Withdraw your vote in a poll.", unvote, (Param("poll", POLL, "the poll's number"),)),
]


def _votes(bot: Bot, votes: Sequence[VoteCast]) -> Awaitable[None]:
    return bot.polls.cast_votes(votes)  # not a coroutine of its own: one await less per vote


async def _ended(bot: Bot, event: PollEndCast) -> None:
    await bot.polls.poll_ended_on_platform(event)


async def _read_back(bot: Bot, event: PollReadBack) -> None:
    await bot.polls.reconcile_poll(event)


def _quick_vote(bot: Bot, vote: VoteCast) -> Pending | None:
    return bot.polls.quick_vote(vote)


EVENT_HANDLERS = [EventHandler(VoteCast, _votes, batch=True, quick=_quick_vote), EventHandler(PollEndCast, _ended),
                  EventHandler(PollReadBack, _read_back)]
