"""A local StepFun-compatible HTTP server: simulated answers, real wire protocol, faults.

It serves ``POST /v1/chat/completions`` (with OpenAI-style tool calls), ``POST /v1/messages``
(the Anthropic-style Messages API), ``POST /v1/responses`` (the Responses API; both with the
same reply text as chat) and ``GET /v1/models``.

Used by the test suite, by teachers rehearsing offline and by the README demo::

    with LocalServer(ServerConfig(tokens_per_second=30)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="any")

Faults on demand (names in ``FAULTS``): send model ``fault-<name>`` (``fault-429x2``: only
the first two such requests fail), the header ``X-Step-Fault: <name>``, or set
``server.config.fault`` (and ``fault_times``). Run ``python -m step_magic.server`` to serve
from a terminal. Standard library only, so importing it costs nothing when it is not used.
"""

from step_magic.server.app import LocalServer
from step_magic.server.cli import run
from step_magic.server.config import ReceivedRequest, ServerConfig
from step_magic.server.faults import FAULTS

__all__ = ["FAULTS", "LocalServer", "ReceivedRequest", "ServerConfig", "run"]
