"""Settings for a call: flags over configured defaults over the environment."""

from __future__ import annotations

import pytest

from step_magic.core.settings import LOCAL_KEY, Settings, check_base_url, settings_for

DEFAULTS = {
    "model": "step-3.7-flash", "effort": None, "system": None, "max_tokens": None,
    "temperature": None, "base_url": None, "timeout": 120.0, "max_retries": 3,
    "show_reasoning": False, "reasoning": True, "api": "chat", "budget": 6000,
    "image_max_side": 2048,
}  # fmt: skip


def test_flags_win_over_defaults_and_the_key_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEPFUN_API_KEY", "sk-from-env")
    flags = {"model": "step-3.5-flash", "timeout": 5.0, "no_reasoning": True}
    settings, warning = settings_for(flags, DEFAULTS, local_url=None, need_key=True)
    assert (settings.model, settings.timeout, settings.reasoning) == ("step-3.5-flash", 5.0, False)
    assert settings.api_key == "sk-from-env"
    assert settings.base_url == "https://api.stepfun.ai/v1"
    assert warning is None


def test_the_key_is_never_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPFUN_API_KEY", "sk-very-secret")
    settings, _ = settings_for({}, DEFAULTS, local_url=None, need_key=True)
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in str(Settings.__repr__(settings))


def test_the_local_simulator_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY", raising=False)
    monkeypatch.delenv("STEP_API_KEY", raising=False)
    settings, _ = settings_for({}, DEFAULTS, local_url="http://127.0.0.1:9/v1", need_key=True)
    assert (settings.api_key, settings.local) == (LOCAL_KEY, True)


@pytest.mark.parametrize(
    ("url", "warns"),
    [
        ("https://api.stepfun.ai/v1", False),
        ("http://127.0.0.1:8765/v1", False),
        ("http://[::1]:8765/v1", False),
        ("http://localhost:8765/v1", False),
        ("http://127.attacker.example/v1", True),
        ("http://10.0.0.5/v1", True),
    ],
)
def test_plain_http_warns_unless_the_server_is_this_machine(url: str, warns: bool) -> None:
    assert (check_base_url(url) is not None) == warns


@pytest.mark.parametrize(
    ("name", "value"),
    [("timeout", 0), ("max_retries", -1), ("temperature", 7.0), ("max_tokens", 0)],
)
def test_out_of_range_defaults_name_the_trait(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"StepMagics.{name}"):
        settings_for({}, {**DEFAULTS, name: value}, local_url=None, need_key=False)
