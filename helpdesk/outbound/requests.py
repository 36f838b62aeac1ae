"""Reading a reply request: JSON or multipart/form-data with files, and its OpenAPI body.

One endpoint takes both encodings (DESIGN §6 names `{body}`; attachments need
multipart), so the handler reads the request itself instead of Litestar's `data`.
Errors match the rest of the API: a missing or mistyped field is 422 naming it, a body
that is not an object is 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from helpdesk.errors import BadRequest, ValidationFailed
from helpdesk.outbound.schemas import ReplyIn
from helpdesk.outbound.service import UploadedFile

_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT_FIELD = re.compile(r"^(?P<message>.*) - at `\$\.(?P<field>[A-Za-z_]+)`$")
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"", "false", "0", "off", "no"})


@dataclass(frozen=True)
class ReplyRequest:
    body: str
    force: bool = False
    files: list[UploadedFile] = field(default_factory=list)


async def read_reply(request: Request[Any, Any, Any]) -> ReplyRequest:
    """The reply in whichever encoding it came; 400/422 for a malformed one."""
    content_type, _ = request.content_type
    if content_type == "multipart/form-data":
        return await _read_form(request)
    if content_type == "application/json" or content_type.endswith("+json"):
        reply = decode_json(await request.body())
        return ReplyRequest(body=reply.body, force=reply.force)
    raise BadRequest("Send the reply as application/json or multipart/form-data.")


def decode_json(raw: bytes) -> ReplyIn:
    """`ReplyIn` from JSON, with msgspec's complaint turned into our error shape."""
    try:
        return msgspec.json.decode(raw, type=ReplyIn)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if missing := _MISSING.search(message):
            raise ValidationFailed({missing[1]: "This field is required."}) from None
        if unknown := _UNKNOWN.search(message):
            raise ValidationFailed({unknown[1]: "Unknown field."}) from None
        if at_field := _AT_FIELD.match(message):
            raise ValidationFailed({at_field["field"]: at_field["message"]}) from None
        raise BadRequest("The request body must be a JSON object.") from None
    except msgspec.DecodeError:
        raise BadRequest("The request body must be a JSON object.") from None


async def _read_form(request: Request[Any, Any, Any]) -> ReplyRequest:
    form = await request.form()
    body, force, files = None, False, []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                files.append(UploadedFile(value.filename, value.content_type, content))
            elif name == "body":
                body = value
            elif name == "force":
                force = _form_flag(value)
    finally:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.close()
    if body is None:
        raise ValidationFailed({"body": "This field is required."})
    return ReplyRequest(body=body, force=force, files=files)


def _form_flag(value: str) -> bool:
    flag = value.strip().lower()
    if flag not in _TRUE | _FALSE:
        raise ValidationFailed({"force": "must be true or false"})
    return flag in _TRUE


_REPLY_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["body"],
    properties={
        "body": Schema(type=OpenAPIType.STRING, description="the reply text"),
        "force": Schema(
            type=OpenAPIType.BOOLEAN,
            description="send even to suppressed (hard-bounced) recipients",
        ),
    },
)
_FORM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["body"],
    properties={
        **(_REPLY_SCHEMA.properties or {}),
        "files": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
            description="attachments: at most 10 MB each, 25 MB together",
        ),
    },
)


@dataclass
class ReplyOperation(Operation):
    """The reply endpoint's OpenAPI operation, documenting both request encodings."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(schema=_REPLY_SCHEMA),
                "multipart/form-data": OpenAPIMediaType(schema=_FORM_SCHEMA),
            },
        )
