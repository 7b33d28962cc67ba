"""Settings at their edges: the environment, the key, the base URL and the exact messages."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from step_magic.core.catalog import DEFAULTS
from step_magic.core.errors import InputError
from step_magic.core.settings import (
    LOCAL_KEY,
    Settings,
    _is_loopback,
    check_base_url,
    check_defaults,
    find_api_key,
    find_base_url,
    is_loopback_url,
    key_for,
    key_variable,
    missing_key_message,
    redact,
    server_label,
    settings_for,
)

MISSING_KEY = (
    "No StepFun API key: run %step_config --key (asks for it without echoing it), or set "
    "STEPFUN_API_KEY before starting Jupyter, or store it once with `step-magic key set` in a "
    "terminal; to work offline: %step_config --local"
)


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment with no key variable and no base URL override."""
    for name in ("STEPFUN_API_KEY", "STEP_API_KEY", "STEPFUN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def env_key(no_key: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STEPFUN_API_KEY", "sk-from-the-environment")
    return "sk-from-the-environment"


def settings(flags: dict[str, Any] | None = None, **defaults: Any) -> Settings:
    return settings_for(flags or {}, {**DEFAULTS, **defaults}, local_url=None, need_key=True)[0]


# --- the environment: an explicit mapping is read instead of os.environ ----------------------


def test_key_variable_reads_the_given_mapping_not_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEPFUN_API_KEY", "sk-in-the-shell")
    assert key_variable({"STEP_API_KEY": "sk-in-the-mapping"}) == "STEP_API_KEY"
    assert key_variable({"STEPFUN_API_KEY": "   "}) is None


@pytest.mark.usefixtures("no_key")
def test_find_api_key_returns_the_stripped_key_from_the_given_mapping(tmp_path: Path) -> None:
    assert find_api_key({"STEP_API_KEY": "  sk-in-the-mapping  "}) == "sk-in-the-mapping"
    # the mapping also says where a stored key would be: here, an empty folder
    assert find_api_key({"STEP_MAGIC_CONFIG_DIR": str(tmp_path)}) is None


def test_find_base_url_reads_the_given_mapping_not_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEPFUN_BASE_URL", "http://127.0.0.1:1/v1")
    assert find_base_url({"STEPFUN_BASE_URL": " http://10.0.0.7/v1 "}) == "http://10.0.0.7/v1"
    assert find_base_url({}) == "https://api.stepfun.ai/v1"


# --- base URLs: refusals and warnings show the URL with its credentials hidden -----------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://user:pw@host/v1", "ftp://user:***@host/v1"),
        ("http://u:pw@h:port/v1", "http://u:***@h:port/v1"),
        ("http://u:pw@127.0.0.1:99999/v1", "http://u:***@127.0.0.1:99999/v1"),
    ],
)
def test_a_base_url_that_is_not_http_is_refused_showing_it_redacted(url: str, shown: str) -> None:
    with pytest.raises(InputError) as caught:
        check_base_url(url)
    assert str(caught.value) == (
        f"--base-url must be an http(s) URL like https://api.stepfun.ai/v1, not {shown!r}"
    )


def test_plain_http_to_a_remote_host_warns_showing_the_url_redacted() -> None:
    warning = check_base_url("http://u:pw@10.0.0.5:8000/v1?api-key=abc")
    assert warning == (
        "http://u:***@10.0.0.5:8000/v1?api-key=*** is plain http to a non-local host: "
        "the API key would travel unencrypted"
    )


# --- which servers are this machine -----------------------------------------------------------


@pytest.mark.parametrize("host", ["[::1]", "[127.0.0.1]", "::1", "127.0.0.2", "localhost"])
def test_a_loopback_host_is_recognised_with_or_without_ipv6_brackets(host: str) -> None:
    assert _is_loopback(host) is True


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8765/v1", True),
        ("http://127.0.0.1/v1", True),
        ("https://api.stepfun.ai/v1", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_is_loopback_url_is_true_only_for_this_machine_and_false_without_a_host(
    url: str, loopback: bool
) -> None:
    assert is_loopback_url(url) is loopback


# --- how errors name the server ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://10.0.0.5/v1", "10.0.0.5"),
        ("https://openrouter.ai:8443/api/v1", "openrouter.ai:8443"),
        ("http://h:port/v1", "h"),
        ("http://h:99999/v1", "h"),
        ("/v1", ""),
    ],
)
def test_the_server_label_is_the_host_and_a_usable_port_and_nothing_invented(
    url: str, label: str
) -> None:
    assert server_label(Settings(model="m", base_url=url, api_key="k")) == label


# --- the missing-key message ------------------------------------------------------------------


def test_the_missing_key_message_says_how_to_set_a_key_and_how_to_work_offline() -> None:
    assert missing_key_message() == MISSING_KEY


@pytest.mark.usefixtures("no_key")
def test_a_call_without_a_key_to_a_remote_server_is_refused_with_that_sentence() -> None:
    with pytest.raises(InputError) as caught:
        settings()
    assert str(caught.value) == MISSING_KEY


@pytest.mark.usefixtures("no_key")
def test_key_for_is_the_one_missing_key_check_in_the_words_of_where_the_user_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``step-magic ask``, ``step-magic doctor``, the magic and the Python API all ask
    ``key_for``: a server elsewhere without a key is refused with the advice for the shell, a
    script or a notebook; a server on this machine, or a call that needs no key, gets None."""
    stepfun = "https://api.stepfun.ai/v1"
    for where in ("shell", "python", "notebook"):
        with pytest.raises(InputError) as caught:
            key_for(stepfun, where)
        assert str(caught.value) == missing_key_message(where)
    assert key_for("http://127.0.0.1:8765/v1", "shell") is None
    assert key_for(stepfun, "shell", required=False) is None
    assert key_for(stepfun, "shell", given="  sk-given  ") == "sk-given"
    monkeypatch.setenv("STEPFUN_API_KEY", "sk-from-the-environment")
    assert key_for(stepfun, "shell") == "sk-from-the-environment"


# --- redact: keys echoed in another shape are matched from 12 letters and digits on ----------


def test_a_twelve_character_key_echoed_upper_cased_and_spaced_is_hidden() -> None:
    assert redact("the key ABCD EFGH IJKL is invalid", "abcd-efgh-ijkl") == "the key *** is invalid"


@pytest.mark.parametrize("wrap", ["\n", "\r\n", "\n    ", "\t"])
def test_a_key_a_server_wrapped_across_lines_is_hidden(wrap: str) -> None:
    key = "sk-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
    wrapped = f"Invalid key: {key[:20]}{wrap}{key[20:]} (check it)"

    assert redact(wrapped, key) == "Invalid key: *** (check it)"


@pytest.mark.parametrize("user", ["", "ab", "abc", "abcd", "reader"])  # every alignment
def test_a_password_in_an_echoed_basic_value_is_hidden_to_its_last_character(user: str) -> None:
    password = "s3cret-pass-2026"
    value = base64.b64encode(f"{user}:{password}".encode()).decode()

    assert redact(f"you sent Authorization: Basic {value}", password) == (
        "you sent Authorization: Basic ***"
    )
    shown = redact(f"credentials {value} refused", password)  # no header around it
    kept = shown.removeprefix("credentials ").removesuffix("*** refused")
    assert value.startswith(kept)
    assert len(kept) <= len(base64.b64encode(f"{user}:".encode()).decode().rstrip("="))


@pytest.mark.parametrize("before", ["", "a", "ab"])  # the three alignments
@pytest.mark.parametrize("after", ["x", "xy", "xyz", "xyzw"])  # letters: no zero bits to share
def test_a_key_inside_a_longer_base64_value_leaves_only_its_mixed_edges(
    before: str, after: str
) -> None:
    """Only the base64 characters that mix the key's bytes with its neighbours' remain."""
    key = "sk-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
    value = base64.b64encode(f"{before}{key}{after}".encode()).decode()

    head, tail = redact(f"v={value};", key)[2:-1].split("***")

    # a base64 character holds 6 bits: those holding a neighbour's bit stay, no other
    assert head == value[: (len(before) * 8 + 5) // 6]
    assert tail == value[(len(before) + len(key)) * 8 // 6 :]


@pytest.mark.parametrize(
    ("user", "password"),
    [("ada", "s3cr"), ("ad", "nine-char"), ("ada", "s3cret/pass:9")],
)
def test_a_url_password_is_hidden_as_typed_percent_encoded_and_in_its_basic_value(
    user: str, password: str
) -> None:
    """As typed and percent-encoded (``/`` and ``:`` too) from four characters on; inside
    the ``Basic`` value's base64 from nine (shorter, its base64 would be too short to tell
    from other base64), even with no ``Basic`` word before it."""
    encoded = urllib.parse.quote(password, safe="")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()

    shown = redact(f"got {password}, {encoded} and {basic};", password)

    assert shown.startswith("got ***, *** and ")
    if len(password) >= 9:
        assert shown.endswith("***;")
        user_part = base64.b64encode(f"{user}:".encode()).decode().rstrip("=")
        assert len(shown.split("***")[2]) <= len(f" and {user_part}")  # the user's at most


@pytest.mark.parametrize("user", ["ad", "ada", "adam"])
def test_a_password_ending_a_base64_value_is_hidden_with_its_padding_or_without(
    user: str,
) -> None:
    """base64url drops the ``=``, and a URL carries it as ``%3D``."""
    password = "s3cret-pass-2026!"
    value = base64.b64encode(f"{user}:{password}".encode()).decode()
    kept = value[: ((len(user) + 1) * 8 + 5) // 6]  # the user's, and the one it shares

    assert redact(f"v={value.rstrip('=')};", password) == f"v={kept}***;"
    padding = "%3D" * value.count("=")
    assert redact(f"v={value.rstrip('=')}{padding};", password) == f"v={kept}***{padding};"


def test_a_key_is_hidden_whole_even_where_an_echoed_header_stops_short_of_it() -> None:
    key = "abcd1234!ijklmnopqrstu"  # a header's value ends at the "!"

    assert redact(f"you sent Bearer {key}", key) == "you sent Bearer ***"


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ("Basic Information is required", "Basic Information is required"),
        ("Bearer token-based auth failed", "Bearer token-based auth failed"),
        ("Basic internationalization", "Basic internationalization"),
        ("BEARER TOKEN_MISSING", "BEARER TOKEN_MISSING"),
        ("got Basic YWRhOnBhc3M=", "got Basic ***"),
        ("got Basic YWRhOnBhc3M", "got Basic ***"),  # its padding dropped
        ("got Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "got Bearer ***"),
        # each sign of a credential alone is enough, and none of them is in a word
        ("got Basic abcdefgh=", "got Basic ***"),  # padding
        ("got Bearer abcdefg1", "got Bearer ***"),  # letters and digits
        ("got Bearer ABCDEFG1", "got Bearer ***"),  # capitals and digits
        ("got Basic 12345678 twice", "got Basic 12345678 twice"),  # digits only: a number
        ("got Bearer aBcdefgh", "got Bearer ***"),  # both cases after the first letter
        ("got Bearer Abcdefgh", "got Bearer Abcdefgh"),  # a capital first: a word
        ("got Bearer abcdefghijklmno.", "got Bearer ***"),  # 16 characters, not a word's
        ("got Bearer abcdefghijklmn.", "got Bearer abcdefghijklmn."),  # 15
        ("BEARER ABCDEFGHIJKLMNOPQRS", "BEARER ABCDEFGHIJKLMNOPQRS"),  # a long word in capitals
    ],
)
def test_an_echoed_credential_is_hidden_and_words_after_basic_or_bearer_are_not(
    said: str, shown: str
) -> None:
    assert redact(said) == shown


def test_an_eleven_character_key_is_hidden_only_as_sent() -> None:
    text = "the key ABCD EFGH IJK is invalid"
    assert redact(text, "abcd-efgh-ijk") == text
    assert redact("the key abcd-efgh-ijk", "abcd-efgh-ijk") == "the key ***"


# --- defaults out of range are named as the user set them --------------------------------------


def test_an_out_of_range_default_is_named_as_a_trait_of_step_magics() -> None:
    with pytest.raises(InputError) as caught:
        check_defaults({"timeout": 0})
    message = "StepMagics.timeout = 0 is out of range: it must be a positive number"
    assert str(caught.value) == message


def test_a_default_of_the_wrong_type_is_refused_not_let_through() -> None:
    with pytest.raises(InputError) as caught:
        check_defaults({"timeout": "0.3"})
    assert str(caught.value) == "StepMagics.timeout = '0.3' is not valid: it must be a number"


@pytest.mark.usefixtures("env_key")
def test_settings_for_names_a_bad_default_with_the_owner_it_is_given() -> None:
    defaults = {**DEFAULTS, "budget": 0}
    with pytest.raises(InputError) as caught:
        settings_for({}, defaults, local_url=None, need_key=True, owner="")
    assert str(caught.value) == "budget = 0 is out of range: it must be a positive whole number"


# --- settings_for: the api, the deadline and remote images --------------------------------------


@pytest.mark.usefixtures("env_key")
@pytest.mark.parametrize(
    ("flags", "defaults", "named"),
    [({"api": "x"}, {}, "--api"), ({}, {"api": "x"}, "StepMagics.api =")],
)
def test_an_unknown_api_is_refused_naming_the_choices_and_the_value(
    flags: dict[str, Any], defaults: dict[str, Any], named: str
) -> None:
    with pytest.raises(InputError) as caught:
        settings(flags, **defaults)
    choices = "chat, messages, responses"
    assert str(caught.value) == f"{named} 'x' is not valid: it must be one of {choices}"


@pytest.mark.usefixtures("env_key")
def test_the_deadline_comes_from_the_flag_over_the_default() -> None:
    assert settings().deadline is None
    assert settings(deadline=45.0).deadline == 45.0
    assert settings({"deadline": 30.0}, deadline=45.0).deadline == 30.0


@pytest.mark.usefixtures("env_key")
@pytest.mark.parametrize(
    ("flag", "default", "loads"),
    [(None, False, False), (True, False, True), (None, True, True), (False, True, True)],
)
def test_remote_images_load_when_the_flag_or_the_default_asks(
    flag: bool | None, default: bool, loads: bool
) -> None:
    assert settings({"remote_images": flag}, remote_images=default).remote_images is loads


# --- the key: given over the environment; loopback servers need none ----------------------------


def test_a_given_key_wins_over_the_environment_and_is_stripped(env_key: str) -> None:
    assert settings({"api_key": "  sk-given  "}).api_key == "sk-given"
    assert settings({"api_key": "   "}).api_key == env_key


@pytest.mark.usefixtures("no_key")
def test_a_given_key_is_enough_without_one_in_the_environment() -> None:
    assert settings({"api_key": "sk-given"}).api_key == "sk-given"


@pytest.mark.usefixtures("no_key")
@pytest.mark.parametrize("url", ["http://localhost:8000/v1", "http://[::1]:8000/v1"])
def test_a_server_on_this_machine_needs_no_key(url: str) -> None:
    result, warning = settings_for({"base_url": url}, dict(DEFAULTS), local_url=None, need_key=True)
    assert (result.base_url, result.api_key, result.local, warning) == (url, LOCAL_KEY, False, None)


@pytest.mark.usefixtures("no_key")
def test_without_need_key_a_remote_server_gets_the_placeholder_key() -> None:
    result, _ = settings_for({}, dict(DEFAULTS), local_url=None, need_key=False)
    assert result.api_key == LOCAL_KEY


def test_a_base_url_password_of_any_useful_length_is_a_secret() -> None:
    from step_magic.core.settings import Settings

    settings = Settings(model="m", base_url="https://bob:hunter2pass@gw.example/v1", api_key="k")
    shown = redact("wrong password hunter2pass for bob", *settings.secrets)
    assert shown == "wrong password *** for bob"
    words = redact("a correct horse", "correct-horse-battery-staple")
    assert words == "a correct horse"  # a password's first word is not a key's kind prefix
