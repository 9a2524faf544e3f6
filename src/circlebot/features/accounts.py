"""Linked accounts in chat: `link` (a one-time code, answered privately), `link <code>` (sent from another
account of the same person, which joins it) and `unlink`. Once linked, the accounts are one member everywhere:
one ballot per poll, one RSVP per meeting, one attendance record, one calendar feed, one reminder (see
`store/accounts.py` for how)."""

from __future__ import annotations

from circlebot.core.commands import TEXT, Command, Param, Reply, UsageError
from circlebot.core.context import Context
from circlebot.core.domain import UserRef
from circlebot.core.text import Text, when
from circlebot.features.attendance import tell_promoted
from circlebot.store.accounts import CODE_LIFE, MAX_WRONG, Accounts, LinkOutcome, read_code, shown_code
from circlebot.store.turnout import TurnoutStore

PLATFORM_NAMES = {"discord": "Discord", "matrix": "Matrix", "console": "the console"}


def _account(user: UserRef) -> str:
    return f"{user.display} on {PLATFORM_NAMES.get(user.platform, user.platform)}"


def _accounts(users: tuple[UserRef, ...]) -> str:
    return ", ".join(_account(u) for u in users)


def _hint(ctx: Context, code: str) -> str:
    """How to send the code from the circle's other platforms (or from any other account)."""
    command = ctx.bot.commands.get(("link",))
    assert command is not None
    here = ctx.invocation.channel.platform
    others = sorted(set(ctx.bot.adapters) - {here})  # the platforms the bot runs
    if not others:
        return f"send `{ctx.syntax.example(command, code=code)}` to the bot from your other account"
    ways = [f"on {PLATFORM_NAMES.get(p, p)}, send `{ctx.bot.syntax(p).example(command, code=code)}` to the bot"
            for p in others]
    return " (or ".join(ways[:1] + [w + ")" for w in ways[1:]]) if len(ways) > 1 else ways[0]


async def _fill_freed_places(ctx: Context) -> None:
    """Two yes answers of one person became one: in circles with a capacity, the places that frees go to the
    first waiting, who are told as when a member says no."""
    for circle in ctx.bot.settings.circles:
        capacity = circle.turnout.capacity
        if capacity is None:
            continue
        for m in await ctx.store.meetings(circle.slug, ending_after=ctx.now):
            promoted = await TurnoutStore(ctx.store.db).fill(m.id, capacity)
            if promoted:
                await tell_promoted(ctx.bot, circle, m, promoted)


async def link(ctx: Context, code: str | None = None) -> Reply:
    accounts = Accounts(ctx.store)
    if code is None:
        issued, expires = await accounts.issue_code(ctx.user, ctx.now)
        shown = shown_code(issued)
        minutes = int(CODE_LIFE.total_seconds() // 60)
        return Reply(Text(f"Your code: {shown}. To make your accounts one, {_hint(ctx, shown)} within {minutes} "
                          "minutes (until ", when(expires), "). It works once; keep it to yourself. Once linked, "
                          "your votes, RSVPs, attendance, reminders and calendar are one, from either account."),
                     private=True)
    digits = read_code(code)
    if digits is None:
        raise UsageError(f"a code is 8 digits, like 4821-9930; got {code[:20]!r}. `link` alone gives you one.")
    result = await accounts.redeem(ctx.user, digits, ctx.now)
    unlink = ctx.syntax.example(ctx.bot.commands.get(("unlink",)) or _UNLINK)
    again = ctx.syntax.example(_LINK)
    if result.outcome is LinkOutcome.LINKED:
        await _fill_freed_places(ctx)
    match result.outcome:
        case LinkOutcome.LINKED:
            text: Text | str = (f"Linked: {_accounts(result.identities)} are one member now: one vote in each "
                                "poll, one RSVP for each meeting, one attendance record, one calendar link and one "
                                f"reminder, whichever account you use. `{unlink}` undoes it.")
        case LinkOutcome.WRONG:
            text = (f"That code is not one I gave (or it was used already). Check it, or ask for a new one with "
                    f"`{again}` from your other account. You may try {MAX_WRONG} wrong codes an hour.")
        case LinkOutcome.EXPIRED:
            text = (f"That code has expired (a code works for {int(CODE_LIFE.total_seconds() // 60)} minutes). Ask "
                    f"for a new one with `{again}` from your other account.")
        case LinkOutcome.TOO_MANY:
            assert result.retry_at is not None
            text = Text(f"Too many wrong codes from this account ({MAX_WRONG} in an hour): I will look at a code "
                        "again from ", when(result.retry_at), ".")
        case LinkOutcome.SAME:
            text = (f"That code is this account's own: send it from your other account, or ask for one with "
                    f"`{again}` there.")
        case LinkOutcome.ALREADY:
            text = f"These accounts are linked already: {_accounts(result.identities)}."
        case LinkOutcome.OTHER_PERSON:
            text = (f"This account is linked to others already ({_accounts(result.identities)}); send `{unlink}` "
                    "first, then the code again (ask for a new one, it was used).")
    return Reply(text, private=True)


async def unlink(ctx: Context) -> Reply:
    gone = await Accounts(ctx.store).unlink(ctx.user)
    if not gone:
        return Reply(f"This account is not linked to another. `{ctx.syntax.example(_LINK)}` links it.", private=True)
    mine = any((u.platform, u.id) == (ctx.user.platform, ctx.user.id) for u in gone)
    kept = "the account you linked to" if mine else "this account"
    return Reply(f"Unlinked: {_accounts(gone)} {'is' if len(gone) == 1 else 'are'} a member of its own again, "
                 f"starting afresh; what you did so far (votes, RSVPs, attendance, settings) stays with {kept}.",
                 private=True)


_LINK = Command(
    ("link",), "Make your accounts on several platforms one member (a one-time code, answered privately).", link,
    (Param("code", TEXT, "the code `link` gave you on your other account", required=False),),
    private=True, examples=("link", "link 4821-9930"), any_circle=True)
_UNLINK = Command(("unlink",), "Undo `link`: this account becomes a member of its own again.", unlink,
                  private=True, any_circle=True)

COMMANDS = [_LINK, _UNLINK]
