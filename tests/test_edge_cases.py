"""Edge cases a mutation-testing run showed were unguarded.

Each test here pins one behaviour that could be changed (a regex flag dropped, a status left
out, a decoder made non-incremental...) without any other fast test failing. They are pure
unit tests: no kernel, no server, no network, no sleeping.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from step_magic.context.interpolate import parse_reference, suggest
from step_magic.core.catalog import DEFAULTS
from step_magic.core.errors import InputError
from step_magic.core.events import AnswerDelta, ReasoningDelta
from step_magic.core.redact import redact_media
from step_magic.core.settings import Settings, check_defaults, settings_for
from step_magic.display.markdown import answer_html, safe_markdown
from step_magic.engine.buffer import ReplyBuffer
from step_magic.wire.retry import _parse_retry_after, retry_delay, retryable
from step_magic.wire.sse import ServerEvent, SSEDecoder

ZWSP = "\u200b"

# --- Markdown: link schemes, in any case, are never live -------------------------------------

SCRIPT_LINKS = [
    ("JavaScript", "alert(1)"),
    ("JAVASCRIPT", "alert(1)"),
    ("VBScript", "msgbox(1)"),
    ("vbscript", "msgbox(1)"),
    ("DATA", "text/html,hello"),
    ("data", "text/html;base64,PHNjcmlwdD4="),
    ("Data", "text/html,hello"),
    ("File", "///etc/passwd"),
]


@pytest.mark.parametrize(("scheme", "rest"), SCRIPT_LINKS)
def test_safe_markdown_breaks_script_schemes_in_any_case(scheme: str, rest: str) -> None:
    assert safe_markdown(f"[click]({scheme}:{rest})") == f"[click]({scheme}{ZWSP}:{rest})"


def test_safe_markdown_breaks_a_scheme_with_spaces_before_the_colon() -> None:
    assert safe_markdown("[x]( VBScript :x)") == f"[x]( VBScript {ZWSP}:x)"


def test_safe_markdown_leaves_prose_that_names_a_scheme_alone() -> None:
    assert safe_markdown("javascript: is a word, VBScript :x too") == (
        "javascript: is a word, VBScript :x too"
    )


@pytest.mark.parametrize(("scheme", "rest"), SCRIPT_LINKS)
def test_answer_html_never_makes_a_script_scheme_a_link(scheme: str, rest: str) -> None:
    rendered = answer_html(f"[click]({scheme}:{rest})")
    assert "<a" not in rendered
    assert "href" not in rendered


def test_safe_markdown_leaves_ordinary_links_alone() -> None:
    assert safe_markdown("[docs](https://example.com/a?b=1)") == "[docs](https://example.com/a?b=1)"


# --- Markdown: prose keeps its lines, fenced code is untouched --------------------------------


def test_safe_markdown_keeps_line_structure_and_escapes_only_amp_and_lt() -> None:
    prose = "first & second\nthird < fourth > fifth\n\n  indented line\nlast line\n"
    assert safe_markdown(prose) == (
        "first &amp; second\nthird &lt; fourth > fifth\n\n  indented line\nlast line\n"
    )


def test_safe_markdown_keeps_windows_line_endings() -> None:
    assert safe_markdown("a & b\r\nc\r\n") == "a &amp; b\r\nc\r\n"


def test_safe_markdown_returns_fenced_code_byte_for_byte() -> None:
    code = 'if a < b && c:\n    x = "<b>&amp;</b>"\n    y = "javascript:void(0)"\n'
    text = f"Before & after:\n```python\n{code}```\nafter < here\n"
    assert safe_markdown(text) == f"Before &amp; after:\n```python\n{code}```\nafter &lt; here\n"


def test_safe_markdown_leaves_code_in_a_fence_without_language_alone() -> None:
    assert safe_markdown("```\na < b && c\n```\n") == "```\na < b && c\n```\n"


# --- Markdown: a fence without a language ----------------------------------------------------


def test_fence_without_language_has_no_language_class_and_no_none() -> None:
    rendered = answer_html("```\ncode\n```")
    assert re.search(r"<code[^>]*>code\n</code></pre>", rendered)
    assert "None" not in rendered
    assert "class=" not in rendered
    assert "language-" not in rendered


def test_fence_with_language_names_it_in_a_class() -> None:
    assert 'class="language-python"' in answer_html("```python\nx = 1\n```")


# --- --with paths: suggestions never crash ---------------------------------------------------


@pytest.mark.parametrize("path", ["plots/chart.png", "data/sales.csv"])
def test_a_file_path_is_not_a_reference(path: str) -> None:
    assert parse_reference(path) is None


@pytest.mark.parametrize("path", ["plots/chart.png", "data/sales.csv"])
def test_suggest_for_a_file_path_returns_a_tuple(path: str) -> None:
    namespace = {"plots": object(), "data": object(), "df": object()}
    assert isinstance(suggest(path, namespace), tuple)


def test_suggest_for_a_file_path_offers_close_names() -> None:
    assert suggest("sales.csv", {"sales_csv": 1, "other": 2}) == ("sales_csv",)


# --- Settings: where the URL comes from, flags, boundaries ----------------------------------

LOCAL_URL = "http://127.0.0.1:8765/v1"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A known environment: a key set, no other key, no base URL override."""
    monkeypatch.setenv("STEPFUN_API_KEY", "sk-edge-case-test-key")
    monkeypatch.delenv("STEP_API_KEY", raising=False)
    monkeypatch.delenv("STEPFUN_BASE_URL", raising=False)


def settings(flags: dict[str, Any] | None = None, **defaults: Any) -> Settings:
    merged = {**DEFAULTS, **defaults}
    return settings_for(flags or {}, merged, local_url=None, need_key=True)[0]


@pytest.mark.usefixtures("clean_env")
def test_a_configured_base_url_wins_over_the_local_simulator() -> None:
    defaults = {**DEFAULTS, "base_url": "https://example.test/v1"}
    result, _ = settings_for({}, defaults, local_url=LOCAL_URL, need_key=True)
    assert result.base_url == "https://example.test/v1"
    assert result.api_key == "sk-edge-case-test-key"
    assert result.local is False


@pytest.mark.usefixtures("clean_env")
def test_without_a_configured_base_url_the_local_simulator_is_used() -> None:
    result, _ = settings_for({}, dict(DEFAULTS), local_url=LOCAL_URL, need_key=True)
    assert result.base_url == LOCAL_URL
    assert result.local is True


@pytest.mark.usefixtures("clean_env")
def test_show_reasoning_flag_reaches_the_settings() -> None:
    assert settings({"show_reasoning": True}).show_reasoning is True
    assert settings({"show_reasoning": False}).show_reasoning is False


@pytest.mark.usefixtures("clean_env")
def test_show_reasoning_default_reaches_the_settings() -> None:
    assert settings(show_reasoning=True).show_reasoning is True
    assert settings().show_reasoning is False


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("temperature", [0, 0.0, 2, 2.0])
def test_temperature_at_either_end_of_the_range_is_accepted(temperature: float) -> None:
    assert settings(temperature=temperature).temperature == temperature


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("temperature", [2.01, -0.01])
def test_temperature_outside_the_range_is_refused(temperature: float) -> None:
    with pytest.raises(InputError, match="temperature"):
        settings(temperature=temperature)


@pytest.mark.usefixtures("clean_env")
def test_zero_retries_is_a_valid_default() -> None:
    check_defaults({**DEFAULTS, "max_retries": 0})
    assert settings(max_retries=0).max_retries == 0


def test_negative_retries_are_refused() -> None:
    with pytest.raises(InputError, match="max_retries"):
        check_defaults({**DEFAULTS, "max_retries": -1})


# --- Retries: Retry-After as an HTTP date, and which statuses are retried ---------------------


def http_date(seconds_from_now: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return email.utils.format_datetime(when, usegmt=True)


def test_retry_after_as_an_http_date_is_honoured() -> None:
    # attempt 1 backs off at most 1 s without Retry-After; the date asks for about 5 s
    # (HTTP dates have whole seconds, so up to a second less)
    delay = retry_delay(1, http_date(5))
    assert delay is not None
    assert 3.5 < delay <= 5.0


def test_parse_retry_after_reads_an_http_date() -> None:
    seconds = _parse_retry_after(http_date(20))
    assert seconds is not None
    assert 18.5 < seconds <= 20.0


def test_retry_after_date_in_the_past_means_no_wait() -> None:
    assert retry_delay(1, http_date(-60)) == 0.0


def test_retry_after_date_beyond_the_cap_gives_up() -> None:
    assert retry_delay(1, http_date(120), cap=30.0) is None


def test_retry_after_in_seconds_is_honoured() -> None:
    assert retry_delay(1, " 7 ") == 7.0


def test_unreadable_retry_after_falls_back_to_backoff() -> None:
    assert _parse_retry_after("soon") is None
    delay = retry_delay(0, "soon")
    assert delay is not None
    assert 0.0 <= delay <= 0.5


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_timeouts_conflicts_rate_limits_and_server_errors_are_retried(status: int) -> None:
    assert retryable(status) is True


def test_502_and_504_are_retried() -> None:
    assert retryable(502)
    assert retryable(504)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert retryable(status) is False


# --- ReplyBuffer: timings, totals and what a flush hands the view ------------------------------


class RecordingView:
    """A view that remembers every update it was given."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str, float]] = []

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        self.updates.append((reasoning, answer, elapsed))


def test_buffer_times_the_first_token_and_the_first_answer() -> None:
    buffer = ReplyBuffer(started=100.0)
    assert buffer.first_token is None
    assert buffer.first_answer is None
    buffer.add(ReasoningDelta("think"), 100.5)
    assert buffer.first_token == 0.5
    assert buffer.first_answer is None
    buffer.add(AnswerDelta("Hello"), 101.25)
    buffer.add(AnswerDelta(" world"), 102.0)
    assert buffer.first_token == 0.5
    assert buffer.first_answer == 1.25


def test_buffer_first_token_may_be_an_answer() -> None:
    buffer = ReplyBuffer(started=10.0)
    buffer.add(AnswerDelta("Hi"), 10.75)
    assert buffer.first_token == 0.75
    assert buffer.first_answer == 0.75


def test_buffer_counts_reasoning_and_keeps_the_answer() -> None:
    buffer = ReplyBuffer(started=0.0)
    buffer.add(ReasoningDelta("abc"), 1.0)
    buffer.add(ReasoningDelta("de"), 2.0)
    buffer.add(AnswerDelta("Hello"), 3.0)
    buffer.add(AnswerDelta(" world"), 4.0)
    assert buffer.reasoning_chars == 5
    assert "".join(buffer.reasoning) == "abcde"
    assert "".join(buffer.answer) == "Hello world"
    assert buffer.step_answer() == "Hello world"


def test_flush_hands_the_view_the_new_text_and_the_elapsed_time() -> None:
    buffer = ReplyBuffer(started=100.0)
    view = RecordingView()
    buffer.add(ReasoningDelta("think"), 100.5)
    buffer.add(AnswerDelta("Hello"), 101.0)
    buffer.add(AnswerDelta(" world"), 102.0)
    buffer.flush(view, 102.5)
    assert view.updates == [("think", "Hello world", 2.5)]
    assert buffer.last_flush == 102.5
    buffer.add(AnswerDelta("!"), 103.0)
    buffer.flush(view, 103.25)
    assert view.updates[1:] == [("", "!", 3.25)]


def test_flush_sends_nothing_when_nothing_is_pending() -> None:
    buffer = ReplyBuffer(started=0.0)
    view = RecordingView()
    buffer.flush(view, 1.0)
    assert view.updates == []
    assert buffer.last_flush == 1.0
    buffer.add(AnswerDelta("x"), 2.0)
    buffer.flush(view, 3.0)
    buffer.flush(view, 4.0)
    assert view.updates == [("", "x", 3.0)]
    assert buffer.last_flush == 4.0


def test_next_step_starts_a_new_turn_in_new_paragraphs() -> None:
    buffer = ReplyBuffer(started=0.0)
    view = RecordingView()
    buffer.add(ReasoningDelta("plan"), 1.0)
    buffer.add(AnswerDelta("Calling a tool."), 2.0)
    buffer.flush(view, 2.0)
    buffer.next_step()
    assert buffer.step_answer() == ""
    assert buffer.first_answer is None
    buffer.add(ReasoningDelta("more"), 3.0)
    buffer.add(AnswerDelta("Final"), 4.0)
    assert buffer.first_answer == 4.0
    assert buffer.first_token == 1.0
    assert buffer.step_answer() == "Final"
    assert "".join(buffer.answer) == "Calling a tool.Final"  # kept without the paragraph break
    assert buffer.reasoning_chars == len("plan") + len("\n\nmore")
    buffer.flush(view, 5.0)
    assert view.updates[-1] == ("\n\nmore", "\n\nFinal", 5.0)


def test_next_step_after_no_text_adds_no_paragraph_breaks() -> None:
    buffer = ReplyBuffer(started=0.0)
    view = RecordingView()
    buffer.next_step()
    buffer.add(ReasoningDelta("a"), 1.0)
    buffer.add(AnswerDelta("b"), 2.0)
    buffer.flush(view, 2.0)
    assert view.updates == [("a", "b", 2.0)]


def test_rethink_moves_the_answer_so_far_into_reasoning() -> None:
    buffer = ReplyBuffer(started=0.0)
    view = RecordingView()
    buffer.add(ReasoningDelta("think"), 1.0)
    buffer.add(AnswerDelta("maybe "), 2.0)
    buffer.add(AnswerDelta("this"), 3.0)
    buffer.rethink(4.0)
    assert buffer.answer == []
    assert buffer.step_answer() == ""
    assert buffer.first_answer is None
    assert buffer.first_token == 1.0
    assert "".join(buffer.reasoning) == "thinkmaybe this"
    assert buffer.reasoning_chars == len("thinkmaybe this")
    buffer.flush(view, 4.5)
    assert view.updates == [("thinkmaybe this", "", 4.5)]


def test_rethink_moves_only_the_current_turn() -> None:
    buffer = ReplyBuffer(started=0.0)
    buffer.add(AnswerDelta("Earlier turn."), 1.0)
    buffer.next_step()
    buffer.add(AnswerDelta("second thoughts"), 2.0)
    buffer.rethink(3.0)
    assert buffer.answer == ["Earlier turn."]
    assert buffer.step_answer() == ""
    # the new turn's reasoning starts a paragraph only after earlier reasoning
    assert "".join(buffer.reasoning) == "second thoughts"


def test_rethink_with_no_answer_changes_nothing_shown() -> None:
    buffer = ReplyBuffer(started=0.0)
    view = RecordingView()
    buffer.add(ReasoningDelta("r"), 1.0)
    buffer.flush(view, 1.0)
    buffer.rethink(2.0)
    buffer.flush(view, 2.0)
    assert view.updates == [("r", "", 1.0)]
    assert buffer.reasoning == ["r"]


# --- SSE: UTF-8 as the network delivers it ---------------------------------------------------


def test_invalid_utf8_becomes_the_replacement_character() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\xffb\n\n") == [ServerEvent("message", "a\ufffdb")]


def test_a_character_split_across_reads_arrives_whole() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: caf\xc3") == []
    assert decoder.feed(b"\xa9 \xe2\x82") == []
    assert decoder.feed(b"\xac\n\n") == [ServerEvent("message", "caf\u00e9 \u20ac")]


def test_a_stream_cut_inside_a_character_ends_with_a_replacement() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: caf\xc3") == []
    assert decoder.finish() == [ServerEvent("message", "caf\ufffd")]


def test_a_byte_order_mark_at_the_start_is_dropped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb\xbfdata: x\n\n") == [ServerEvent("message", "x")]


def test_a_byte_order_mark_split_across_reads_is_dropped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.feed(b"\xbfevent: ping\ndata: x\n\n") == [ServerEvent("ping", "x")]


# --- text helpers: durations people read, cuts that say so ------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.42, "0.42 s"),
        (0.999, "1.00 s"),
        (1.0, "1.0 s"),
        (1.5, "1.5 s"),
        (59.94, "59.9 s"),
        (60.0, "1 min 0 s"),
        (60.4, "1 min 0 s"),
        (125.0, "2 min 5 s"),
        (3_599.6, "60 min 0 s"),
    ],
)
def test_durations_are_written_for_people(value: float, shown: str) -> None:
    from step_magic.core.text import seconds

    assert seconds(value) == shown


def test_a_text_exactly_at_its_budget_is_not_cut() -> None:
    from step_magic.core.text import bounded

    assert bounded("abcde", 5) == "abcde"
    assert bounded("abcdef", 5) == "abcde\n… (cut: 6 chars in all)"


# --- how a failed call is worded (wire/retry.describe_error, after_failure) -------------------


def _status_error(status: int, body: object, reason: str = "") -> Any:
    import httpx
    import openai

    request = httpx.Request("POST", "https://api.stepfun.ai/v1/chat/completions")
    response = httpx.Response(
        status, request=request, extensions={"reason_phrase": reason.encode()}
    )
    return openai.APIStatusError("failed", response=response, body=body)


def test_a_status_error_without_a_message_says_request_failed_and_no_hint() -> None:
    from step_magic.wire.retry import describe_error

    assert describe_error(_status_error(418, None), "u", 5) == (418, "request failed")
    assert describe_error(_status_error(418, None, "I'm a teapot"), "u", 5) == (418, "I'm a teapot")
    body = {"error": {"message": "slow down"}}
    assert describe_error(_status_error(429, body), "u", 5)[1] == (
        "slow down — rate limited; try again in a moment"
    )
    assert describe_error(_status_error(418, {"message": 5}), "u", 5)[1] == "request failed"


def test_the_401_hint_depends_on_whose_server_it_is() -> None:
    from step_magic.wire.retry import describe_error

    stepfun = describe_error(_status_error(401, None), "u", 5)[1]
    other = describe_error(_status_error(401, None), "u", 5, stepfun=False)[1]
    assert "keys from api.stepfun.com and api.stepfun.ai" in stepfun
    assert other.endswith(
        "check the key this server expects (step-magic sends STEPFUN_API_KEY to it)"
    )


def test_a_connection_error_names_its_cause_when_it_has_one() -> None:
    import httpx
    import openai

    from step_magic.wire.retry import describe_error

    def failure(cause: BaseException | None, context: BaseException | None) -> Exception:
        err = openai.APIConnectionError(request=httpx.Request("POST", "http://h/v1"))
        err.__cause__, err.__context__ = cause, context
        return err

    where = "connection to http://h/v1 failed"
    assert describe_error(failure(None, None), "http://h/v1", 5) == (None, where)
    refused = failure(ConnectionRefusedError("refused"), None)
    assert describe_error(refused, "http://h/v1", 5)[1] == f"{where}: refused"
    reset = failure(None, OSError("reset by peer"))  # raised while handling another error
    assert describe_error(reset, "http://h/v1", 5)[1] == f"{where}: reset by peer"
    wordless = failure(None, OSError(""))  # a cause with no words adds nothing
    assert describe_error(wordless, "http://h/v1", 5)[1] == where
    assert describe_error(RuntimeError("odd"), "u", 5) == (None, "odd")


def test_a_status_that_is_not_retried_fails_with_no_note() -> None:
    from step_magic.core.errors import StepAPIError
    from step_magic.wire.retry import after_failure

    notes: list[str] = []

    def error(failure: Exception, note: str) -> StepAPIError:
        notes.append(note)
        return StepAPIError("failed" + note)

    with pytest.raises(StepAPIError):
        after_failure(_status_error(400, None), 1, 3, error)
    assert notes == [""]


def test_json_nested_too_deeply_is_a_value_error_that_says_so() -> None:
    from step_magic.core.text import read_json

    with pytest.raises(ValueError, match=r"^it is nested too deeply to read$"):
        read_json("[" * 100_000)
    assert read_json('{"a": [1]}') == {"a": [1]}


# --- core/redact.py: data URLs of every shape become the reference of the bytes they hold ---


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("url", "data", "mime"),
    [
        ("data:,hello%20world", b"hello world", "text/plain"),  # no header: RFC 2397's default
        ("data:text/csv,a,b,c", b"a,b,c", "text/csv"),  # commas after the first are data
        ("data:image/png;base64,aGk=", b"hi", "image/png"),
        ("data:image/png;base64,@@not base64@@", b"@@not base64@@", "image/png"),
    ],
)
def test_a_data_url_becomes_the_hash_size_and_type_of_its_bytes(
    url: str, data: bytes, mime: str
) -> None:
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    (redacted,) = redact_media([message])
    reference = redacted["content"][0]["image_url"]["url"]
    assert reference == f"sha256:{_sha(data)} ({len(data)} bytes, {mime})"


def test_parts_that_are_not_media_are_left_alone() -> None:
    message = {"role": "user", "content": ["a bare string part", {"type": "text", "text": "hi"}]}
    assert redact_media([message]) == (message,)


# --- engine/buffer.py: a new model turn starts a new paragraph only after real text ---


def test_a_turn_after_a_blank_answer_does_not_start_with_a_blank_paragraph() -> None:
    buffer = ReplyBuffer(started=0.0)
    buffer.add(AnswerDelta(" "), 0.1)
    buffer.add(AnswerDelta("\n"), 0.2)  # the first turn answered only whitespace
    buffer.next_step()
    buffer.add(AnswerDelta("Done."), 0.3)
    assert buffer.pending_answer[-1] == "Done."


def test_maths_inside_a_remote_image_host_is_shown_as_written() -> None:
    rendered = answer_html("![chart](http://user@$x$.Evil.com:8080/i.png)")
    assert "[image: chart — $x$.Evil.com]" in rendered
    assert "stepmagicmath" not in rendered.lower()
