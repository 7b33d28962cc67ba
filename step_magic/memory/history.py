"""A SQLite log of every ``%%step`` call: find old answers, export them, replay repeated requests.

The schema is versioned with ``PRAGMA user_version`` and changed only by appending to
``MIGRATIONS``, so a file written by an older step-magic is upgraded in place and one written by
a newer step-magic is left alone. History is a convenience: a broken file, a full disk or an
unwritable directory costs one warning, never a failed cell. The log holds references to media
(a hash, a size, a type), never the media, and it has no place for the API key.

Search is SQLite's FTS5 full-text search over the prompt, the reasoning and the answer (words,
any order, case and accents ignored; ``scatter*`` for a prefix), kept in step with every
insert. A SQLite built without FTS5 gets a one-line note and a plain substring search.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import platformdirs

from step_magic.core.redact import redact_media
from step_magic.core.request import own_messages
from step_magic.memory.conversation import DEFAULT_THREAD
from step_magic.memory.records import CallRecord

PATH_VARIABLE = "STEP_MAGIC_HISTORY"
BUSY_TIMEOUT = 5.0  # seconds another process may hold the write lock before we give up

# Each entry moves the schema up one version; never edit an entry, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE calls (
            id INTEGER PRIMARY KEY, started_at REAL NOT NULL, model TEXT NOT NULL, effort TEXT,
            prompt TEXT NOT NULL, messages TEXT NOT NULL, attachments TEXT NOT NULL,
            reasoning TEXT NOT NULL, answer TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER,
            finish_reason TEXT, trace_id TEXT, completion_id TEXT, elapsed REAL,
            first_token REAL, notebook TEXT, thread TEXT, cache_key TEXT,
            replayed INTEGER NOT NULL DEFAULT 0
        )""",
    ),
    (
        "CREATE INDEX calls_by_cache_key ON calls (cache_key)",
        "CREATE INDEX calls_by_start ON calls (started_at)",
    ),
    # A named thread is rebuilt from its calls in a new kernel: which cell made each turn (a
    # re-run replaces it) and where the thread started afresh (--new, Chat.reset).
    (
        "ALTER TABLE calls ADD COLUMN cell TEXT",
        "ALTER TABLE calls ADD COLUMN starts_thread INTEGER NOT NULL DEFAULT 0",
    ),
    # Each turn is stored once: a call's row keeps its own messages (the system prompt, its
    # question and what followed), and counts the earlier turns' messages it left out (they
    # are in the thread's earlier rows). Storing the whole thread with every call grew the
    # file with the square of a conversation (15 MB after 300 short calls).
    ("ALTER TABLE calls ADD COLUMN earlier_messages INTEGER NOT NULL DEFAULT 0",),
    # Full-text search. Contentless: the text stays in ``calls`` only, the index holds the
    # words (rowid = calls.id). Skipped where SQLite lacks FTS5; created later by a build that
    # has it (``_index_new_rows``), so one file can move between Pythons.
    (
        "CREATE VIRTUAL TABLE IF NOT EXISTS calls_text USING fts5(prompt, reasoning, answer, "
        "content='', tokenize='unicode61 remove_diacritics 2')",
    ),
)
FULL_TEXT_TABLE = MIGRATIONS[4][0]

# What a broken file, a full disk or an odd value (a lone surrogate) can raise; none of it may
# fail the user's cell.
_FAILURES = (sqlite3.Error, OSError, ValueError, TypeError, OverflowError)
_SEARCHED = ("prompt", "answer", "reasoning", "model", "trace_id")  # without FTS5
_IDENTIFIERS = ("model", "trace_id")  # matched as substrings beside the full-text search
_NEWEST_FIRST = "ORDER BY started_at DESC, id DESC"


_COLUMNS = tuple(item.name for item in fields(CallRecord) if item.name != "id")
_INSERT = f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES (:{', :'.join(_COLUMNS)})"
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM calls"
_INDEX = "INSERT INTO calls_text (rowid, prompt, reasoning, answer) VALUES (?, ?, ?, ?)"
# Rows a build without FTS5 wrote (or written before the index existed): ids only grow.
_UNINDEXED = (
    "FROM calls WHERE id > coalesce((SELECT rowid FROM calls_text ORDER BY rowid DESC LIMIT 1), 0)"
)
_INDEX_NEW = f"{_INDEX.split(' VALUES')[0]} SELECT id, prompt, reasoning, answer {_UNINDEXED}"
# The SQL text is here, and on the few lines inside functions marked ``# pragma: no mutate``,
# which hold SQL and nothing else: mutmut's mutants of it change only the case of keywords
# and names, which SQLite ignores (docs/mutation.md).
_AND, _OR = " AND ", " OR "
_KEPT = "status IN ('complete', 'truncated')"  # the endings a thread or a replay goes on from
_THREAD = f"WHERE thread = :name AND {_KEPT} AND replayed = 0 ORDER BY started_at, id"
_WORDS = "id IN (SELECT rowid FROM calls_text WHERE calls_text MATCH :match)"
_FTS5_PROBE = "temp.step_fts5_probe"
FTS5_MISSING = "this SQLite has no FTS5 full-text search, so --search looks for the text as it is"


def default_path() -> Path:
    """Where history lives: ``$STEP_MAGIC_HISTORY``, else the platform's user data directory."""
    override = os.environ.get(PATH_VARIABLE, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("step-magic") / "history.sqlite3"


def _print_warning(message: str) -> None:
    print(f"step-magic: {message}", file=sys.stderr)


class History:
    """The call log in one SQLite file, safe to share between threads and processes.

    Nothing touches the disk until the first call, so creating one costs nothing. Every method
    but ``export_jsonl`` swallows database and file errors: the first one is reported through
    ``warn`` (one line), the rest are silent. If the file cannot be opened, or was written by a
    newer step-magic, the object stays a no-op.
    """

    def __init__(self, path: Path | None = None, *, warn: Callable[[str], None] | None = None):
        self.path = default_path() if path is None else Path(path)
        self._warn = warn or _print_warning
        self._warned = False
        self._disabled = False
        self._full_text = False  # the open file has the FTS5 index (set on connecting)
        self._noted_substring = False
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, shared by the kernel and worker threads

    def record(self, call: CallRecord) -> int | None:
        """Append ``call`` and return its row id, or None when history is unavailable."""
        values = {name: getattr(call, name) for name in _COLUMNS}
        with self._lock:
            try:
                connection = self._connect()
                if connection is None:
                    return None
                own, earlier = own_messages(call.messages)
                values["earlier_messages"] = len(earlier)
                values["messages"] = json.dumps(redact_media(own), ensure_ascii=False)
                values["attachments"] = json.dumps(list(call.attachments), ensure_ascii=False)
                with _writing(connection):  # the row and its words, or neither
                    row_id = connection.execute(_INSERT, values).lastrowid
                    if self._full_text:
                        text = (call.prompt, call.reasoning, call.answer)
                        connection.execute(_INDEX, (row_id, *text))
                return row_id
            except _FAILURES as exc:
                self._warn_once("history record failed", exc)
                return None

    def recent(
        self, n: int = 20, search: str | None = None, chat: str | None = None
    ) -> list[CallRecord]:
        """The ``n`` newest calls (all for -1), newest first.

        ``search``: every word of it in the prompt, reasoning or answer (full-text, see the
        module docstring), or the text inside the model name or trace id, which a reader
        copies from a footer. ``chat``: only the calls of that named thread.
        """
        search = (search or "").replace("\0", " ").strip() or None  # FTS5 refuses a NUL
        where: list[str] = []
        if search:
            where.append(self._search_clause())
        if chat is not None:
            where.append("thread = :chat")
        params = {"search": search, "match": match_query(search or ""), "chat": chat, "n": n}
        joined = f"WHERE {_AND.join(where)}" if where else ""
        return self._select(f"{joined} {_NEWEST_FIRST} LIMIT :n", params)

    def newest_thread(self) -> str | None:
        """The named thread of the most recent call that had one (``step-magic ask -c``);
        the default thread always starts empty, so it is never continued."""
        query = f"WHERE thread IS NOT NULL AND thread != :default {_NEWEST_FIRST} LIMIT 1"
        found = self._select(query, {"default": DEFAULT_THREAD})
        return found[0].thread if found else None

    def find_reply(self, cache_key: str, *, truncated: bool = False) -> CallRecord | None:
        """The newest complete reply to the request with ``cache_key``, for replay; with
        ``truncated``, a reply cut at the token limit too (a ``--map`` re-run keeps it)."""
        kept = _KEPT if truncated else "status = 'complete'"
        query = f"WHERE cache_key = :key AND {kept} {_NEWEST_FIRST} LIMIT 1"
        found = self._select(query, {"key": cache_key})
        return found[0] if found else None

    def thread(self, name: str) -> list[CallRecord]:
        """The kept calls of the thread ``name``, oldest first (``Chat(name)``, ``--chat NAME``
        in a new kernel continue from them)."""
        return self._select(_THREAD, {"name": name})

    def export_jsonl(self, target: Path, *, n: int | None = None, search: str | None = None) -> int:
        """Write the ``n`` newest matching calls (all by default) to ``target``, oldest first.

        Raises OSError when ``target`` cannot be written; the caller says so to the user.
        """
        records = self.recent(-1 if n is None else n, search)[::-1]
        with Path(target).open("w", encoding="utf-8") as out:
            for item in records:
                out.write(item.json_line() + "\n")
        return len(records)

    def close(self) -> None:
        """Close the connection; the next call opens it again."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _search_clause(self) -> str:
        """The WHERE clause of a search: full-text where the file has the index."""
        with self._lock:
            self._connect(create=False)
            full_text = self._full_text
            if not full_text and self._connection is not None and not self._noted_substring:
                self._noted_substring = True
                self._warn(FTS5_MISSING)
        if not full_text:
            anywhere = [f"step_contains({column}, :search)" for column in _SEARCHED]
            return f"({_OR.join(anywhere)})"
        identifiers = [f"step_contains({column}, :search)" for column in _IDENTIFIERS]
        return f"({_OR.join([_WORDS, *identifiers])})"

    def _select(self, clauses: str, params: dict[str, Any]) -> list[CallRecord]:
        with self._lock:
            try:
                connection = self._connect(create=False)
                if connection is None:
                    return []
                rows = connection.execute(f"{_SELECT} {clauses}", params).fetchall()
                return [_from_row(row) for row in rows]
            except _FAILURES as exc:
                self._warn_once("history read failed", exc)
                return []

    def _connect(self, *, create: bool = True) -> sqlite3.Connection | None:
        """The open, migrated connection; None when history is disabled, or for a read
        (``create=False``) before anything was logged: reading creates nothing. Call under
        the lock."""
        if self._connection is not None or self._disabled:
            return self._connection
        if not create and not self.path.exists():
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except _FAILURES as exc:
            self._disable(exc)
            return None
        try:
            full_text = has_fts5(connection)
            refusal = _prepare(connection, full_text)
            if refusal is None and full_text:
                _index_new_rows(connection)
        except _FAILURES as exc:
            refusal = f"{exc}"
        if refusal:
            connection.close()
            self._disable(refusal)
            return None
        connection.row_factory = sqlite3.Row
        connection.create_function("step_contains", 2, _contains, deterministic=True)
        self._connection, self._full_text = connection, full_text
        return connection

    def _disable(self, reason: object) -> None:
        self._disabled = True
        self._warn_once("history disabled", reason)

    def _warn_once(self, what: str, problem: object) -> None:
        if not self._warned:
            self._warned = True
            self._warn(" ".join(f"{what}: {problem} ({self.path})".split()))


def has_fts5(connection: sqlite3.Connection) -> bool:
    """Whether this SQLite build has FTS5 (most do; some minimal builds do not)."""
    try:
        connection.execute(f"CREATE VIRTUAL TABLE {_FTS5_PROBE} USING fts5(x)")  # pragma: no mutate
    except sqlite3.OperationalError:
        return False
    connection.execute(f"DROP TABLE {_FTS5_PROBE}")  # pragma: no mutate
    return True


@contextmanager
def _writing(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock at once (IMMEDIATE): two processes never
    both read the same state and then write."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _index_new_rows(connection: sqlite3.Connection) -> None:
    """Create the full-text index if a build without FTS5 migrated the file, and index the
    rows it does not hold yet. Usually there are none: one read, and no write lock taken."""
    if _indexed(connection) and not connection.execute(f"SELECT 1 {_UNINDEXED}").fetchone():
        return
    with _writing(connection):
        connection.execute(FULL_TEXT_TABLE)
        connection.execute(_INDEX_NEW)


def _indexed(connection: sqlite3.Connection) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE name = 'calls_text'"
    return connection.execute(query).fetchone() is not None


def match_query(text: str) -> str:
    """``text`` as an FTS5 query: every word must appear (each quoted, so ``-``, ``:`` or
    ``"`` in it are words, not query syntax); a trailing ``*`` keeps its prefix meaning."""
    return " ".join(_term(word) for word in text.split())  # (``recent`` drops NULs first)


def _term(word: str) -> str:
    stem = word.rstrip("*") or word  # "*" alone is a word, not an empty prefix
    quoted = '"' + stem.replace('"', '""') + '"'
    return quoted + "*" if stem != word else quoted


def _prepare(connection: sqlite3.Connection, full_text: bool) -> str | None:
    """Check the version, switch on WAL, migrate (the full-text index only where
    ``full_text``); return why the file must be left alone."""
    known = len(MIGRATIONS)
    found = _version(connection)
    if found <= known:  # a newer file is not even switched to WAL: that writes to it
        _switch_to_wal(connection)
        # With WAL, NORMAL cannot corrupt the file (a power cut may lose the last call), and a
        # commit no longer waits for the disk while another process waits for the lock.
        connection.execute("PRAGMA synchronous = NORMAL")  # pragma: no mutate
    if found < known:
        # IMMEDIATE takes the write lock before reading the version, so two processes creating
        # the file at once migrate it once.
        with _writing(connection):
            found = _version(connection)
            for steps in MIGRATIONS[found:]:
                for statement in steps:
                    if full_text or statement != FULL_TEXT_TABLE:
                        connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {max(found, known)}")
    if found > known:
        return f"schema version {found} is newer than this step-magic knows ({known})"
    return None


def _version(connection: sqlite3.Connection) -> int:
    version = connection.execute("PRAGMA user_version")  # pragma: no mutate
    return int(version.fetchone()[0])


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """Turn on WAL (kept in the file), so readers never block the writer and vice versa.

    While two processes create the file at once, SQLite answers "database is locked" at once
    instead of waiting (waiting here could deadlock it), so we wait for it.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")  # pragma: no mutate
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _contains(text: str | None, needle: str) -> bool:
    return text is not None and needle.casefold() in text.casefold()


def _from_row(row: sqlite3.Row) -> CallRecord:
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 (a Row is no mapping)
    values["messages"] = tuple(json.loads(values["messages"]))
    values["attachments"] = tuple(json.loads(values["attachments"]))
    values["replayed"] = bool(values["replayed"])
    values["starts_thread"] = bool(values["starts_thread"])
    return CallRecord(**values)
