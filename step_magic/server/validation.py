"""Check a chat completion request the way StepFun does and turn it into plain facts.

Everything the real API rejects with 400 is rejected here too, so code written against the
local server does not meet its first 400 in front of a class.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from step_magic.core.models import DEFAULT_MODEL, EFFORTS, MODELS, ModelInfo
from step_magic.server.errors import invalid_params
from step_magic.server.faults import FAULT_MODEL_PREFIX, parse_fault_spec, unknown_fault_message
from step_magic.server.structured import parse_response_format
from step_magic.server.tools import (
    AUTO,
    ORPHAN_TOOL_MESSAGE,
    UNANSWERED_CALLS,
    OfferedTool,
    PlannedCall,
    ToolChoice,
    ToolResult,
    assistant_calls,
    parse_tool_choice,
    parse_tools,
    tool_call_id,
)

MAX_IMAGES = 60
ROLES = frozenset({"system", "user", "assistant", "tool"})
IMAGE_DETAILS = frozenset({"low", "high"})
_REMOTE_SCHEMES = ("http://", "https://", "stepfile://")
_IMAGE_DATA_URL = re.compile(r"data:image/(?:png|jpeg|jpg|webp|gif);base64,(?P<data>.*)", re.S)
_VIDEO_DATA_URL = re.compile(r"data:video/(?:mp4|quicktime|x-matroska);base64,(?P<data>.*)", re.S)


@dataclass(frozen=True)
class ReceivedMessage:
    """What the reply generator needs from one message: role, text, images and videos.

    ``tool_calls`` are the calls an assistant message made; ``tool_call_id`` is the call a
    ``tool`` message answers.
    """

    role: str
    text: str
    image_details: tuple[str, ...]
    videos: int
    tool_calls: tuple[PlannedCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ReceivedChat:
    """A validated chat completion request.

    ``model`` is the model that answers: the name sent, or step-3.7-flash for a
    ``fault-…`` model, so a fault changes how a reply is delivered and never its text
    (but for ``tool-loop``, which keeps calling tools, and ``chatty-tools``, which reshapes
    the calls as less tidy servers send them).
    ``raw_messages`` is kept for prompt caching. ``tool_results`` are the ``tool`` messages
    since the last user message: with none, a request offering tools gets tool calls back.
    """

    model: str
    info: ModelInfo
    fault: str | None
    messages: tuple[ReceivedMessage, ...]
    raw_messages: list[Any]
    effort: str | None
    stream: bool
    max_tokens: int | None
    deepseek_style: bool
    tools: tuple[OfferedTool, ...] = ()
    tool_choice: ToolChoice = AUTO
    tool_results: tuple[ToolResult, ...] = ()
    include_usage: bool = False  # stream_options.include_usage
    output_schema: dict[str, Any] | None = None  # response_format's JSON schema


# The Chat Completions fields this server knows; ``fault-strict-params`` refuses any other.
KNOWN_FIELDS = frozenset(
    {
        "model", "messages", "stream", "reasoning_effort", "max_tokens", "temperature",
        "top_p", "tools", "tool_choice", "reasoning_format", "stop", "n", "user",
        "response_format",
    }
)  # fmt: skip


def parse_chat_request(body: Any) -> ReceivedChat:
    """Validate ``body`` (parsed JSON) or raise the ``ApiError`` StepFun would answer."""
    if not isinstance(body, dict):
        raise invalid_params("The request body must be a JSON object.")
    model, info, fault = _model(body.get("model"))
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if fault == "strict-params" and unknown:
        raise invalid_params(f"Unrecognized request argument supplied: {unknown[0]}")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid_params("messages is required and must be a non-empty array.")
    messages = tuple(_message(index, item) for index, item in enumerate(raw_messages))
    _check_media(model, info, messages)
    tools = parse_tools(body.get("tools"))
    return ReceivedChat(
        model=model,
        info=info,
        fault=fault,
        messages=messages,
        raw_messages=raw_messages,
        effort=_effort(model, info, body.get("reasoning_effort")),
        stream=_flag(body, "stream"),
        max_tokens=_max_tokens(body.get("max_tokens")),
        deepseek_style=body.get("reasoning_format") == "deepseek-style",
        tools=tools,
        tool_choice=parse_tool_choice(body.get("tool_choice"), tools),
        tool_results=tool_results(messages),
        include_usage=_include_usage(body.get("stream_options")),
        output_schema=_output_schema(fault, body.get("response_format")),
    )


def _output_schema(fault: str | None, value: Any) -> dict[str, Any] | None:
    if value is not None and fault == "refuse-schema":
        raise invalid_params("Unrecognized request argument supplied: response_format")
    return parse_response_format(value)


def _include_usage(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, dict):
        raise invalid_params("stream_options must be an object.")
    return value.get("include_usage") is True


def _model(value: Any) -> tuple[str, ModelInfo, str | None]:
    if not isinstance(value, str) or not value:
        raise invalid_params("model is required.")
    if value in MODELS:
        return value, MODELS[value], None
    if value.startswith(FAULT_MODEL_PREFIX):
        fault = value[len(FAULT_MODEL_PREFIX) :]
        if parse_fault_spec(fault) is None:
            raise invalid_params(unknown_fault_message(fault))
        return DEFAULT_MODEL, MODELS[DEFAULT_MODEL], fault
    raise invalid_params(
        f"The model {value!r} does not exist or you do not have access to it. "
        f"Available models: {', '.join(MODELS)}."
    )


def _effort(model: str, info: ModelInfo, value: Any) -> str | None:
    if value is None:
        return None
    if value not in EFFORTS:
        raise invalid_params(
            f"reasoning_effort must be one of {', '.join(EFFORTS)}, not {value!r}."
        )
    if not info.efforts:
        raise invalid_params(f"reasoning_effort is not supported by {model}.")
    if value not in info.efforts:
        raise invalid_params(
            f"{model} supports reasoning_effort {' or '.join(info.efforts)}, not {value!r}."
        )
    return str(value)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise invalid_params(f"{name} must be a boolean.")
    return value


def _max_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_params("max_tokens must be a positive integer.")
    return value


def _message(index: int, item: Any) -> ReceivedMessage:
    if not isinstance(item, dict) or item.get("role") not in ROLES:
        raise invalid_params(
            f"messages[{index}] must be an object with a role among {', '.join(sorted(ROLES))}."
        )
    calls, call_id = assistant_calls(index, item), tool_call_id(index, item)
    text, details, videos = _content(index, item.get("content"))
    return ReceivedMessage(item["role"], text, details, videos, calls, call_id)


def _content(index: int, content: Any) -> tuple[str, tuple[str, ...], int]:
    """The text, image details and video count of one message's content."""
    if content is None or isinstance(content, str):
        return content or "", (), 0
    if not isinstance(content, list):
        raise invalid_params(f"messages[{index}].content must be a string or an array of parts.")
    texts: list[str] = []
    details: list[str] = []
    videos = 0
    for part_index, part in enumerate(content):
        where = f"messages[{index}].content[{part_index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            details.append(_image(where, part.get("image_url")))
        elif kind == "video_url":
            _video(where, part.get("video_url"))
            videos += 1
        else:
            raise invalid_params(f"{where} must be a text, image_url or video_url part.")
    return "\n".join(texts), tuple(details), videos


def _url(where: str, value: Any) -> str:
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url:
        raise invalid_params(f"{where} needs an object with a url.")
    return url


def _image(where: str, value: Any) -> str:
    """Check an image part and return its detail level (StepFun's default is "low")."""
    _check_media_url(where, _url(where, value), _IMAGE_DATA_URL, "image")
    detail = value.get("detail", "low")
    if detail not in IMAGE_DETAILS:
        raise invalid_params(f"{where}.image_url.detail must be low or high, not {detail!r}.")
    return str(detail)


def _video(where: str, value: Any) -> None:
    _check_media_url(where, _url(where, value), _VIDEO_DATA_URL, "video")


def _check_media_url(where: str, url: str, data_url: re.Pattern[str], kind: str) -> None:
    if url.startswith(_REMOTE_SCHEMES):
        return
    match = data_url.fullmatch(url)
    if match is None:
        raise invalid_params(
            f"{where}: the {kind} URL must be http(s), stepfile:// or a base64 data URL "
            f"of a supported {kind} format."
        )
    try:
        base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid_params(f"{where}: the {kind} data URL is not valid base64.") from None


def _check_media(model: str, info: ModelInfo, messages: tuple[ReceivedMessage, ...]) -> None:
    images = sum(len(message.image_details) for message in messages)
    videos = sum(message.videos for message in messages)
    if images and not info.images:
        raise invalid_params(f"{model} does not accept image input.")
    if videos and not info.video:
        raise invalid_params(f"{model} does not accept video input.")
    if images > MAX_IMAGES:
        raise invalid_params(f"Too many images: {images}; at most {MAX_IMAGES} per request.")


def tool_results(messages: Sequence[ReceivedMessage]) -> tuple[ToolResult, ...]:
    """The tool results since the last user message; the order is checked as OpenAI does.

    An assistant message with ``tool_calls`` must be followed at once by one ``tool`` message
    per call, and a ``tool`` message must answer a call of the assistant message just before
    it; so a client that drops, reorders or misplaces a result meets the same 400 here.
    """
    pending: dict[str, str] = {}  # call id -> function name, not answered yet
    results: list[ToolResult] = []
    for index, message in enumerate(messages):
        if message.tool_call_id is not None:
            if message.tool_call_id not in pending:
                raise invalid_params(
                    f"{ORPHAN_TOOL_MESSAGE} (messages[{index}].tool_call_id "
                    f"{message.tool_call_id!r} answers no call of the assistant message before.)"
                )
            name = pending.pop(message.tool_call_id)
            results.append(ToolResult(message.tool_call_id, name, message.text))
            continue
        _check_answered(pending, index)
        if message.role == "user":
            results.clear()
        pending = {call.id: call.name for call in message.tool_calls}
    _check_answered(pending, len(messages))
    return tuple(results)


def _check_answered(pending: dict[str, str], index: int) -> None:
    if pending:
        raise invalid_params(
            f"{UNANSWERED_CALLS} The following tool_call_ids did not have response messages "
            f"before messages[{index}]: {', '.join(pending)}."
        )
