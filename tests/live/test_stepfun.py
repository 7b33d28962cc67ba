"""The real StepFun API, checked by ``step-magic doctor``'s checks: run only with a key.

No machine in CI reaches StepFun, so everything else runs against imitations; these tests
are the one place the imitations are compared with the real thing. They make a few tiny
calls (about a cent) and are skipped, with the reason, when ``STEPFUN_API_KEY`` is unset.
"""

from __future__ import annotations

import os

import pytest

from step_magic.cli_doctor import examine
from step_magic.core.settings import Settings, find_base_url

KEY = os.environ.get("STEPFUN_API_KEY", "").strip()
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not KEY, reason="STEPFUN_API_KEY is not set: the live checks call StepFun"),
]


@pytest.mark.parametrize("model", ["step-3.7-flash", "step-3.5-flash"])
def test_stepfun_speaks_as_protocol_md_says(model: str) -> None:
    settings = Settings(model=model, base_url=find_base_url(), api_key=KEY)
    findings = list(examine(settings, timeout=120))
    failed = [f for f in findings if f.verdict != "ok" and f.check != "tool call"]
    assert not failed, "\n".join(f"{f.check}: {f.observed}" for f in failed)
