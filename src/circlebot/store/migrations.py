"""Ordered schema migrations. Version N is MIGRATIONS[N-1]; never edit a released step, add a new one.

Each step is written once, for both databases: plain statements run on SQLite as written and on PostgreSQL
with SQLite's column idioms turned into PostgreSQL's (`postgresql.ddl`: INTEGER is 64-bit, an INTEGER PRIMARY
KEY numbers its rows itself, WITHOUT ROWID means nothing there). The few statements the two write differently
(a trigger, a data fix for SQLite files older than PostgreSQL support) are a `Dialects`, both texts side by
side."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dialects:
    """One migration statement as each database writes it; None: nothing to do on that database."""

    sqlite: str | None
    postgresql: str | None


def sqlite_statements(statements: list[str | Dialects]) -> list[str]:
    """A step's statements as SQLite runs them (for a test that builds an older database by hand)."""
    out = []
    for s in statements:
        sql = s if isinstance(s, str) else s.sqlite
        if sql is not None:
            out.append(sql)
    return out


MIGRATIONS: list[tuple[str, list[str | Dialects]]] = [
    (
        "members, meetings, RSVPs, check-ins, polls, votes, post log",
        [
            """CREATE TABLE members (
                id INTEGER PRIMARY KEY,
                platform TEXT NOT NULL,
                user_id TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                UNIQUE (platform, user_id)
            )""",
            """CREATE TABLE meetings (
                id INTEGER PRIMARY KEY,
                circle TEXT NOT NULL,
                starts_at TEXT NOT NULL,
                ends_at TEXT NOT NULL,
                reading TEXT NOT NULL,
                part INTEGER,
                parts INTEGER,
                status TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'cancelled')),
                created_by INTEGER REFERENCES members (id),
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX meetings_by_circle ON meetings (circle, status, starts_at)",
            """CREATE TABLE rsvps (
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                answer TEXT NOT NULL CHECK (answer IN ('yes', 'maybe', 'no')),
                at TEXT NOT NULL,
                PRIMARY KEY (meeting_id, member_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE checkins (
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                at TEXT NOT NULL,
                PRIMARY KEY (meeting_id, member_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX checkins_by_member ON checkins (member_id)",
            """CREATE TABLE polls (
                id INTEGER PRIMARY KEY,
                circle TEXT NOT NULL,
                question TEXT NOT NULL,
                multi INTEGER NOT NULL,
                secret INTEGER NOT NULL,
                opened_by INTEGER REFERENCES members (id),
                opened_at TEXT NOT NULL,
                closes_at TEXT,
                closed_at TEXT
            )""",
            """CREATE TABLE poll_answers (
                poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
                idx INTEGER NOT NULL,
                text TEXT NOT NULL,
                PRIMARY KEY (poll_id, idx)
            ) WITHOUT ROWID""",
            """CREATE TABLE votes (
                poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                answers TEXT NOT NULL,
                cast_at INTEGER NOT NULL,  -- microseconds since the epoch (UTC): platforms order votes by it
                PRIMARY KEY (poll_id, member_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE poll_messages (
                poll_id INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
                platform TEXT NOT NULL,
                channel TEXT NOT NULL,
                message_id TEXT NOT NULL,
                PRIMARY KEY (platform, channel, message_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE post_log (
                key TEXT PRIMARY KEY,
                circle TEXT NOT NULL,
                meeting_id INTEGER REFERENCES meetings (id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                due_at TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'missed', 'failed')),
                claimed_at TEXT NOT NULL,
                done_at TEXT,
                detail TEXT
            ) WITHOUT ROWID""",
            """CREATE TABLE post_messages (
                post_key TEXT NOT NULL REFERENCES post_log (key) ON DELETE CASCADE,
                platform TEXT NOT NULL,
                channel TEXT NOT NULL,
                message_id TEXT NOT NULL,
                PRIMARY KEY (platform, channel, message_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE adapter_state (
                platform TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (platform, key)
            ) WITHOUT ROWID""",
        ],
    ),
    (
        "meeting questions: added by organisers, or hidden for one meeting",
        [
            """CREATE TABLE meeting_questions (
                id INTEGER PRIMARY KEY,
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                text TEXT NOT NULL,
                added_by INTEGER REFERENCES members (id),
                added_at TEXT NOT NULL
            )""",
            "CREATE INDEX meeting_questions_by_meeting ON meeting_questions (meeting_id, id)",
            """CREATE TABLE meeting_hidden_questions (
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                text TEXT NOT NULL,
                hidden_by INTEGER REFERENCES members (id),
                hidden_at TEXT NOT NULL,
                PRIMARY KEY (meeting_id, text)
            ) WITHOUT ROWID""",
        ],
    ),
    (
        "timeline posts delivered per location (platform + channel), each retried on its own",
        [
            # one row per location of a claimed post; 'sending' until the platform took it ('sent', with its
            # message id) or it was no longer useful ('missed'); first_try_at is when the first attempt began,
            # which bounds how long the platform can still recognise a resend by its idempotency key
            """CREATE TABLE post_deliveries (
                post_key TEXT NOT NULL REFERENCES post_log (key) ON DELETE CASCADE,
                platform TEXT NOT NULL,
                channel TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('sending', 'sent', 'missed')),
                first_try_at TEXT NOT NULL,
                done_at TEXT,
                message_id TEXT,
                detail TEXT,
                PRIMARY KEY (post_key, platform, channel)
            ) WITHOUT ROWID""",
            "CREATE INDEX post_deliveries_sending ON post_deliveries (state) WHERE state = 'sending'",
            # a location done: its message joins post_messages, and the post is done once every location is
            Dialects(
                sqlite="""CREATE TRIGGER post_delivery_done AFTER UPDATE OF state ON post_deliveries
            WHEN NEW.state != 'sending' AND OLD.state = 'sending'
            BEGIN
                INSERT OR REPLACE INTO post_messages (post_key, platform, channel, message_id)
                    SELECT NEW.post_key, NEW.platform, NEW.channel, NEW.message_id WHERE NEW.message_id IS NOT NULL;
                UPDATE post_log SET
                    state = CASE
                        WHEN EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = NEW.post_key
                                     AND d.state = 'sending') THEN 'claimed'
                        WHEN EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = NEW.post_key
                                     AND d.state = 'missed') THEN 'missed'
                        ELSE 'sent' END,
                    done_at = CASE
                        WHEN EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = NEW.post_key
                                     AND d.state = 'sending') THEN NULL
                        ELSE NEW.done_at END,
                    detail = CASE WHEN NEW.state = 'missed'
                        THEN NEW.platform || ' ' || NEW.channel || ': ' || COALESCE(NEW.detail, 'missed')
                        ELSE detail END
                WHERE key = NEW.post_key;
            END""",
                postgresql="""CREATE FUNCTION post_delivery_done() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    -- the post's row is locked first: two processes finishing two locations of one post at
                    -- once then see each other's delivery (each statement below reads what is committed)
                    PERFORM 1 FROM post_log WHERE key = NEW.post_key FOR UPDATE;
                    IF NEW.message_id IS NOT NULL THEN
                        INSERT INTO post_messages (post_key, platform, channel, message_id)
                            VALUES (NEW.post_key, NEW.platform, NEW.channel, NEW.message_id)
                            ON CONFLICT (platform, channel, message_id) DO UPDATE SET post_key = excluded.post_key;
                    END IF;
                    UPDATE post_log SET
                        state = CASE
                            WHEN EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = NEW.post_key
                                         AND d.state = 'sending') THEN 'claimed'
                            WHEN EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = NEW.post_key
                                         AND d.state = 'missed') THEN 'missed'
                            ELSE 'sent' END,
                        done_at = CASE
                            WHEN EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = NEW.post_key
                                         AND d.state = 'sending') THEN NULL
                            ELSE NEW.done_at END,
                        detail = CASE WHEN NEW.state = 'missed'
                            THEN NEW.platform || ' ' || NEW.channel || ': ' || COALESCE(NEW.detail, 'missed')
                            ELSE detail END
                    WHERE key = NEW.post_key;
                    RETURN NULL;
                END $$""",
            ),
            Dialects(
                sqlite=None,  # the SQLite trigger above is both the function and the trigger
                postgresql="""CREATE TRIGGER post_delivery_done AFTER UPDATE OF state ON post_deliveries
                FOR EACH ROW WHEN (NEW.state <> 'sending' AND OLD.state = 'sending')
                EXECUTE FUNCTION post_delivery_done()""",
            ),
        ],
    ),
    (
        "adapter state by namespace and key, each item tied to the meeting or poll it belongs to (for clean-up)",
        [
            """CREATE TABLE adapter_items (
                platform TEXT NOT NULL,
                namespace TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                meeting_id INTEGER REFERENCES meetings (id) ON DELETE CASCADE,
                poll_id INTEGER REFERENCES polls (id) ON DELETE CASCADE,
                written_at TEXT NOT NULL,
                PRIMARY KEY (platform, namespace, key)
            ) WITHOUT ROWID""",
            "CREATE INDEX adapter_items_by_meeting ON adapter_items (meeting_id) WHERE meeting_id IS NOT NULL",
            "CREATE INDEX adapter_items_by_poll ON adapter_items (poll_id) WHERE poll_id IS NOT NULL",
            "CREATE INDEX adapter_items_unowned ON adapter_items (written_at) "
            "WHERE meeting_id IS NULL AND poll_id IS NULL",
            # what the Matrix adapter kept in adapter_state under prefixed keys moves here, with its owner (SQLite
            # only: a PostgreSQL database is younger than those keys, its adapter_state never held them): a
            # post's controls name their meeting, a reaction its post, a poll's end is keyed by the poll's event
            Dialects(
                sqlite="""INSERT INTO adapter_items (platform, namespace, key, value, meeting_id, poll_id, written_at)
                SELECT platform, 'controls', substr(key, 10), value,
                       (SELECT id FROM meetings WHERE id = json_extract(value, '$.meeting')), NULL,
                       strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'
                FROM adapter_state WHERE substr(key, 1, 9) = 'controls:' AND json_valid(value)""",
                postgresql=None,
            ),
            Dialects(
                sqlite="""INSERT INTO adapter_items (platform, namespace, key, value, meeting_id, poll_id, written_at)
                SELECT s.platform, 'reaction', substr(s.key, 10), s.value,
                       (SELECT c.meeting_id FROM adapter_items c WHERE c.platform = s.platform
                        AND c.namespace = 'controls' AND c.key = json_extract(s.value, '$.target')), NULL,
                       strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'
                FROM adapter_state s WHERE substr(s.key, 1, 9) = 'reaction:' AND json_valid(s.value)""",
                postgresql=None,
            ),
            Dialects(
                sqlite="""INSERT INTO adapter_items (platform, namespace, key, value, meeting_id, poll_id, written_at)
                SELECT s.platform, 'poll_end', substr(s.key, 10), s.value, NULL,
                       (SELECT m.poll_id FROM poll_messages m WHERE m.platform = s.platform
                        AND m.message_id = substr(s.key, 10) LIMIT 1),
                       strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'
                FROM adapter_state s WHERE substr(s.key, 1, 9) = 'poll_end:'""",
                postgresql=None,
            ),
            "DELETE FROM adapter_state WHERE substr(key, 1, 9) IN ('controls:', 'reaction:', 'poll_end:')",
        ],
    ),
    (
        "where each ballot came from (a command, or the platform's native poll) and the native ballot last seen",
        [
            "ALTER TABLE votes ADD COLUMN source TEXT NOT NULL DEFAULT 'command' "
            "CHECK (source IN ('command', 'native'))",
            "ALTER TABLE votes ADD COLUMN native TEXT",  # the native ballot on the platform; NULL: none seen yet
        ],
    ),
    (
        "the circle's record: reading progress per meeting, members' record settings (streaks), facilitators",
        [
            """CREATE TABLE reading_progress (
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                progress TEXT NOT NULL CHECK (progress IN ('all', 'part', 'not')),
                at TEXT NOT NULL,
                PRIMARY KEY (meeting_id, member_id)
            )""",
            # a member's choices about their own record in one circle (streaks shown or not); absent: the default
            """CREATE TABLE record_settings (
                circle TEXT NOT NULL,
                member_id INTEGER NOT NULL REFERENCES members (id),
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                at TEXT NOT NULL,
                PRIMARY KEY (circle, member_id, name)
            )""",
            # who facilitates a meeting: proposed by the rota, taken with `facilitate`, or set by an organiser
            """CREATE TABLE facilitators (
                meeting_id INTEGER PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
                member_id INTEGER REFERENCES members (id),
                how TEXT NOT NULL CHECK (how IN ('proposed', 'taken', 'assigned')),
                at TEXT NOT NULL
            )""",
            # members who handed a meeting on (`facilitate pass`): never proposed for it again
            """CREATE TABLE facilitator_passes (
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                at TEXT NOT NULL,
                PRIMARY KEY (meeting_id, member_id)
            )""",
        ],
    ),
    (
        "web: the unguessable links of circle pages and calendar feeds (a circle's, each member's), and a revision "
        "per meeting (a calendar's SEQUENCE and LAST-MODIFIED)",
        [
            """CREATE TABLE web_links (
                token TEXT PRIMARY KEY,
                circle TEXT NOT NULL,
                member_id INTEGER REFERENCES members (id),
                alarm_minutes INTEGER,
                created_at TEXT NOT NULL,
                retired_at TEXT
            )""",
            "CREATE UNIQUE INDEX web_links_of_circle ON web_links (circle) "
            "WHERE member_id IS NULL AND retired_at IS NULL",
            "CREATE UNIQUE INDEX web_links_of_member ON web_links (circle, member_id) "
            "WHERE member_id IS NOT NULL AND retired_at IS NULL",
            "ALTER TABLE meetings ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE meetings ADD COLUMN modified_at TEXT",
            "UPDATE meetings SET modified_at = created_at",
        ],
    ),
    (
        "the waitlist: a yes beyond a meeting's capacity waits for a place, in the order it joined the queue",
        [
            "ALTER TABLE rsvps ADD COLUMN waitlisted_at TEXT",  # NULL: not waiting (a place, or not a yes)
        ],
    ),
    (
        "reminders by direct message: each member's choice per circle (off unless they ask), and each one sent",
        [
            # a member's direct-message reminders in one circle: on (enabled 1) or off, and how long before;
            # refused_at: the platform refused a direct message, which switched them off
            """CREATE TABLE dm_reminders (
                circle TEXT NOT NULL,
                member_id INTEGER NOT NULL REFERENCES members (id),
                enabled INTEGER NOT NULL DEFAULT 0,
                lead_minutes INTEGER,
                refused_at TEXT,
                at TEXT NOT NULL,
                PRIMARY KEY (circle, member_id)
            )""",
            # one direct-message reminder of one meeting (at one start time) to one member: claimed, then done
            """CREATE TABLE dm_sent (
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                starts_at TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'refused', 'failed')),
                at TEXT NOT NULL,
                PRIMARY KEY (meeting_id, member_id, starts_at)
            )""",
        ],
    ),
    (
        "each timeline delivery held by the process sending it, for a while it renews (several processes on one "
        "database: a process that stops renewing has its deliveries taken over)",
        [
            "ALTER TABLE post_deliveries ADD COLUMN owner TEXT",  # the process sending it; NULL: claimed before
            "ALTER TABLE post_deliveries ADD COLUMN lease_until TEXT",  # the owner renews it while alive
        ],
    ),
    (
        "direct-message reminders tried again until their meeting starts, and resumed after a restart: each "
        "one's tries, its next try, the last failure, when a try began that never ended, and who holds it",
        [
            "ALTER TABLE dm_sent ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE dm_sent ADD COLUMN next_try_at TEXT",  # claimed: when to try (again); NULL: at once
            "ALTER TABLE dm_sent ADD COLUMN detail TEXT",  # why the last try failed, or why it was given up
            # a try began then and its end was never recorded (the process stopped while sending): resent only
            # while the platform still recognises its idempotency key
            "ALTER TABLE dm_sent ADD COLUMN sending_since TEXT",
            "ALTER TABLE dm_sent ADD COLUMN owner TEXT",  # the process holding it; NULL: claimed before
            "ALTER TABLE dm_sent ADD COLUMN lease_until TEXT",  # the owner renews it while alive
        ],
    ),
    (
        "posts decided once (the RSVP deadline's outcome, the nudge): the decision, for every process and location",
        [
            # one row per post (its post-log key), written first-wins by the process that decides it, in the
            # transaction that does what it decided to the meeting; every location is sent `post` (the Post as
            # JSON); NULL: nothing to post, its deliveries end as `state` with `detail`. `tell`: the members to
            # tell privately (JSON [[platform, id, name]]); `told`: the platforms the deciding process ran, whose
            # members it told (JSON list)
            """CREATE TABLE post_decisions (
                post_key TEXT PRIMARY KEY,
                circle TEXT NOT NULL,
                meeting_id INTEGER NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                due_at TEXT NOT NULL,
                expires_at TEXT NOT NULL,
                post TEXT,
                state TEXT NOT NULL,
                detail TEXT,
                tell TEXT NOT NULL,
                told TEXT NOT NULL,
                decided_by TEXT NOT NULL,
                decided_at TEXT NOT NULL
            )""",
            "CREATE INDEX post_decisions_by_expiry ON post_decisions (expires_at)",
        ],
    ),
    (
        "change counts: how many times meetings and polls were changed, so each process on a shared database "
        "knows when another changed what it keeps in memory",
        [
            # one row per kind ("meetings", "polls"), counted up in every transaction that changes that kind;
            # no row yet: no change counted
            "CREATE TABLE change_counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        ],
    ),
    (
        "the circles whose meetings changed: each one's meetings change count at its last change, so another "
        "process plans again only those circles",
        [
            # circle '*': a change whose circle was not known (every circle is planned again)
            "CREATE TABLE meeting_changes (circle TEXT PRIMARY KEY, at_count INTEGER NOT NULL)",
        ],
    ),
    (
        "meetings keep the calendar UID they were published under while the syllabus only planned them",
        [
            # NULL: the UID is meeting-<id>-<circle> (scheduled by command, or stored before this version)
            "ALTER TABLE meetings ADD COLUMN calendar_uid TEXT",
        ],
    ),
    (
        "linked accounts: one person's identities on several platforms as one member, the one-time codes that "
        "link them, and the wrong codes tried (a limit on guessing)",
        [
            # the member this identity is linked to (the person's canonical member, whose rows hold everything
            # the person did); NULL: the identity is its own member
            "ALTER TABLE members ADD COLUMN linked_to INTEGER REFERENCES members (id)",
            "CREATE INDEX members_by_link ON members (linked_to)",
            # a code `link` gave an identity (`member_id`, its own row): single use, until `expires_at`
            """CREATE TABLE link_codes (
                code TEXT PRIMARY KEY,
                member_id INTEGER NOT NULL REFERENCES members (id),
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
            "CREATE INDEX link_codes_by_member ON link_codes (member_id)",
            # each wrong (or expired) code an identity sent, so a few an hour are allowed, on every process
            """CREATE TABLE link_tries (
                member_id INTEGER NOT NULL REFERENCES members (id),
                at TEXT NOT NULL
            )""",
            "CREATE INDEX link_tries_by_member ON link_tries (member_id, at)",
        ],
    ),
    (
        "no ballot is stored in a closed poll: the database refuses it, whichever process or path writes it",
        [
            # every ballot is an INSERT (an upsert: SQLite and PostgreSQL run BEFORE INSERT triggers before the
            # conflict check, so a changed vote is refused too); the message is BALLOT_REFUSED in queries.py
            Dialects(
                sqlite="""CREATE TRIGGER votes_only_in_open_polls BEFORE INSERT ON votes
            WHEN (SELECT closed_at FROM polls WHERE id = NEW.poll_id) IS NOT NULL
            BEGIN
                SELECT RAISE(ABORT, 'ballot refused: the poll is closed');
            END""",
                # FOR SHARE: a ballot written while a close of its poll is being committed waits for that commit
                # and then sees the poll closed; a close waits for the ballots being written, so its results (read
                # after its commit) hold exactly the ballots stored
                postgresql="""CREATE FUNCTION votes_only_in_open_polls() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                closed TEXT;
            BEGIN
                SELECT closed_at INTO closed FROM polls WHERE id = NEW.poll_id FOR SHARE;
                IF closed IS NOT NULL THEN
                    RAISE EXCEPTION 'ballot refused: the poll is closed';
                END IF;
                RETURN NEW;
            END
            $$""",
            ),
            Dialects(
                sqlite=None,  # the SQLite trigger above is both the function and the trigger
                postgresql="""CREATE TRIGGER votes_only_in_open_polls BEFORE INSERT ON votes
                FOR EACH ROW EXECUTE FUNCTION votes_only_in_open_polls()""",
            ),
        ],
    ),
    (
        "linked accounts: when an identity of a linked person was last seen as an organiser of a circle by its "
        "platform's standing (a Discord role, Manage Server, a Matrix power level), so the person's other "
        "identities are organisers too",
        [
            # member_id: the identity's own row (not the person's); seen_at: the last command showing the standing
            """CREATE TABLE organiser_standing (
                circle TEXT NOT NULL,
                member_id INTEGER NOT NULL REFERENCES members (id),
                seen_at TEXT NOT NULL,
                PRIMARY KEY (circle, member_id)
            )""",
        ],
    ),
]
