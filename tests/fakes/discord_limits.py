"""Discord's limits, enforced with the error shapes and codes Discord answers (discord-api-docs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.fakes.discord_state import FLAG_COMPONENTS_V2, walk_components

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_FILES = 10
MAX_ROWS = 5
MAX_ROW_WIDTH = 5
MAX_V2_COMPONENTS = 40
MAX_EMBED_TOTAL = 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
MAX_EMBED_FIELDS = 25
MODAL_TITLE, MODAL_INPUTS, MODAL_LABEL, MODAL_PLACEHOLDER, MODAL_VALUE = 45, 5, 45, 100, 4000
MAX_SLASH_COMMANDS, MAX_MENU_COMMANDS = 100, 15
MAX_OPTIONS = MAX_CHOICES = 25
MAX_COMMAND_CHARS = 8000
INTERACTION_DEADLINE = 3.0
TOKEN_LIFETIME = 15 * 60.0
_SLASH_NAME = re.compile(r"^[-_'\w]{1,32}$")
_SELECTS = (3, 5, 6, 7, 8)
_V2_TOP_LEVEL = (1, 9, 10, 12, 13, 14, 17)


class ApiError(Exception):
    """An error answer: HTTP status plus Discord's JSON body (a 429 also says when to retry)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: dict[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message} {errors or ''}".rstrip())
        self.status, self.code, self.message, self.errors = status, code, message, errors
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        if self.retry_after is not None:
            body.update(retry_after=self.retry_after, **{"global": False})
        return body


def invalid(path: str, code: str, message: str) -> ApiError:
    """50035 Invalid Form Body with the error nested at a dotted path, as Discord nests it."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path.split(".")) if path else ():
        errors = {key: errors}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def too_long(path: str, limit: int) -> ApiError:
    return invalid(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def bad_length(path: str, low: int, high: int) -> ApiError:
    return invalid(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _length(value: Any, path: str, high: int, low: int = 0) -> None:
    size = len(value or "")
    if size > high or size < low:
        raise bad_length(path, low, high) if low else too_long(path, high)


def _error(status: int, code: int, message: str) -> Callable[[], ApiError]:
    # A factory, not a shared instance: a raised exception keeps its traceback (and the request) alive.
    return lambda: ApiError(status, code, message)


UNKNOWN_INTERACTION = _error(404, 10062, "Unknown interaction")
ALREADY_ACKNOWLEDGED = _error(400, 40060, "Interaction has already been acknowledged.")
UNKNOWN_WEBHOOK = _error(404, 10015, "Unknown Webhook")
UNKNOWN_MESSAGE = _error(404, 10008, "Unknown Message")
UNKNOWN_CHANNEL = _error(404, 10003, "Unknown Channel")
UNKNOWN_GUILD = _error(404, 10004, "Unknown Guild")
UNKNOWN_APPLICATION = _error(404, 10002, "Unknown Application")
EMPTY_MESSAGE = _error(400, 50006, "Cannot send an empty message")
MISSING_PERMISSIONS = _error(403, 50013, "Missing Permissions")
NOT_AUTHOR = _error(403, 50005, "Cannot edit a message authored by another user")
UNAUTHORIZED = _error(401, 0, "401: Unauthorized")
TOO_LARGE = _error(413, 40005, "Request entity too large")


def check_message(message: dict[str, Any], *, file_sizes: list[int], size_limit: int) -> None:
    """The body of a message as it will be after this request (content, embeds, components, files)."""
    if len(file_sizes) > MAX_FILES:
        raise too_long("attachments", MAX_FILES)
    if any(size > size_limit for size in file_sizes):
        raise TOO_LARGE()
    content = message.get("content") or ""
    _length(content, "content", MAX_CONTENT)
    embeds = message.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        raise too_long("embeds", MAX_EMBEDS)
    check_embeds(embeds)
    components = message.get("components") or []
    if (message.get("flags") or 0) & FLAG_COMPONENTS_V2:
        if content or embeds:
            raise invalid(
                "content",
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' and 'embeds' fields cannot be used with MessageFlags.IS_COMPONENTS_V2",
            )
        check_components_v2(components)
    else:
        check_action_rows(components)
    if not (content or embeds or components or file_sizes or message.get("sticker_ids") or message.get("poll")):
        raise EMPTY_MESSAGE()


def check_embeds(embeds: list[dict[str, Any]]) -> None:
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            _length(embed.get(key), f"embeds.{i}.{key}", limit)
            total += len(embed.get(key) or "")
        fields = embed.get("fields") or []
        if len(fields) > MAX_EMBED_FIELDS:
            raise too_long(f"embeds.{i}.fields", MAX_EMBED_FIELDS)
        for j, item in enumerate(fields):
            _length(item.get("name"), f"embeds.{i}.fields.{j}.name", 256, 1)
            _length(item.get("value"), f"embeds.{i}.fields.{j}.value", 1024, 1)
            total += len(item["name"]) + len(item["value"])
        footer = (embed.get("footer") or {}).get("text")
        author = (embed.get("author") or {}).get("name")
        _length(footer, f"embeds.{i}.footer.text", 2048)
        _length(author, f"embeds.{i}.author.name", 256)
        total += len(footer or "") + len(author or "")
    if total > MAX_EMBED_TOTAL:
        raise invalid("embeds", "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}")


def check_action_rows(rows: list[dict[str, Any]]) -> None:
    if len(rows) > MAX_ROWS:
        raise too_long("components", MAX_ROWS)
    for i, row in enumerate(rows):
        if row.get("type") != 1:
            raise invalid(f"components.{i}.type", "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).')
        children = row.get("components") or []
        if not 1 <= len(children) <= MAX_ROW_WIDTH:
            raise bad_length(f"components.{i}.components", 1, MAX_ROW_WIDTH)
        for j, child in enumerate(children):
            check_component(child, f"components.{i}.components.{j}")
            if child.get("type") in _SELECTS and len(children) > 1:
                raise invalid(f"components.{i}.components", "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                              "The specified component exceeds the maximum width")  # fmt: skip
    check_custom_ids(rows, "components")


def check_components_v2(components: list[dict[str, Any]]) -> None:
    if len(walk_components(components)) > MAX_V2_COMPONENTS:
        raise too_long("components", MAX_V2_COMPONENTS)
    for i, component in enumerate(components):
        if component.get("type") not in _V2_TOP_LEVEL:
            raise invalid(f"components.{i}.type", "UNION_TYPE_CHOICES", "Invalid top-level component type")
    for component in walk_components(components):
        if component.get("type") in (2, *_SELECTS):
            check_component(component, "components")
    check_custom_ids(components, "components")


def check_component(component: dict[str, Any], path: str) -> None:
    kind = component.get("type")
    if kind == 2:
        _length(component.get("label"), f"{path}.label", 80)
        if component.get("style") == 5:
            if not component.get("url") or "custom_id" in component:
                raise invalid(f"{path}.url", "BUTTON_COMPONENT_URL_REQUIRED", "A url is required")
            return
        if component.get("style") == 6:
            return
        if not (component.get("label") or component.get("emoji")):
            raise invalid(f"{path}.label", "BASE_TYPE_REQUIRED", "This field is required")
    elif kind in _SELECTS:
        _length(component.get("placeholder"), f"{path}.placeholder", 150)
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not (0 <= low <= 25 and 1 <= high <= 25 and low <= high):
            raise invalid(f"{path}.max_values", "BASE_TYPE_BAD_INT", "min_values and max_values must be 0-25, 1-25")
        if len(component.get("default_values") or []) > high:
            raise bad_length(f"{path}.default_values", 0, high)
        if kind == 3:
            options = component.get("options") or []
            if not 1 <= len(options) <= 25:
                raise bad_length(f"{path}.options", 1, 25)
            for k, option in enumerate(options):
                _length(option.get("label"), f"{path}.options.{k}.label", 100, 1)
                _length(option.get("value"), f"{path}.options.{k}.value", 100, 1)
                _length(option.get("description"), f"{path}.options.{k}.description", 100)
    else:
        raise invalid(f"{path}.type", "UNION_TYPE_CHOICES", "Invalid component type in an action row")
    if "custom_id" not in component:
        raise invalid(f"{path}.custom_id", "BASE_TYPE_REQUIRED", "This field is required")


def check_custom_ids(components: list[dict[str, Any]], path: str) -> None:
    seen: set[str] = set()
    for component in walk_components(components):
        if "custom_id" not in component:
            continue
        custom_id = component["custom_id"]
        _length(custom_id, f"{path}.custom_id", 100, 1)
        if custom_id in seen:
            raise invalid(path, "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
        seen.add(custom_id)


def check_modal(data: dict[str, Any]) -> None:
    _length(data.get("title"), "data.title", MODAL_TITLE, 1)
    _length(data.get("custom_id"), "data.custom_id", 100, 1)
    components = data.get("components") or []
    if not 1 <= len(components) <= MODAL_INPUTS:
        raise bad_length("data.components", 1, MODAL_INPUTS)
    for i, component in enumerate(components):
        path = f"data.components.{i}"
        if component.get("type") == 1:
            inputs = component.get("components") or []
            if len(inputs) != 1 or inputs[0].get("type") != 4:
                raise invalid(f"{path}.components", "BASE_TYPE_BAD_LENGTH", "An action row holds one text input")
            _length(inputs[0].get("label"), f"{path}.components.0.label", MODAL_LABEL, 1)
            _check_modal_field(inputs[0], f"{path}.components.0")
        elif component.get("type") == 18:
            _length(component.get("label"), f"{path}.label", MODAL_LABEL, 1)
            _length(component.get("description"), f"{path}.description", 100)
            _check_modal_field(component.get("component") or {}, f"{path}.component")
        elif component.get("type") != 10:
            raise invalid(f"{path}.type", "UNION_TYPE_CHOICES", "Invalid component type in a modal")
    check_custom_ids(components, "data.components")


def _check_modal_field(field: dict[str, Any], path: str) -> None:
    if field.get("type") == 4:
        _length(field.get("placeholder"), f"{path}.placeholder", MODAL_PLACEHOLDER)
        _length(field.get("value"), f"{path}.value", MODAL_VALUE)
        for key in ("min_length", "max_length"):
            if field.get(key) is not None and not 0 <= field[key] <= MODAL_VALUE:
                raise invalid(f"{path}.{key}", "NUMBER_TYPE_MAX", f"int value should be <= {MODAL_VALUE}.")
    elif field.get("type") not in (*_SELECTS, 19, 21, 22, 23):
        raise invalid(f"{path}.type", "UNION_TYPE_CHOICES", "Invalid component type in a label")
    if "custom_id" not in field:
        raise invalid(f"{path}.custom_id", "BASE_TYPE_REQUIRED", "This field is required")


def check_commands(commands: list[dict[str, Any]]) -> None:
    """A bulk overwrite of one scope (global or one guild)."""
    counts = {1: 0, 2: 0, 3: 0}
    seen: set[tuple[int, str]] = set()
    for i, command in enumerate(commands):
        kind = command.get("type", 1)
        if kind not in counts:
            raise invalid(f"{i}.type", "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
        counts[kind] += 1
        if (kind, command.get("name")) in seen:
            raise invalid(
                f"{i}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"
            )
        seen.add((kind, command.get("name")))
        if kind == 1:
            _check_slash_name(command.get("name"), f"{i}.name")
            _length(command.get("description"), f"{i}.description", 100, 1)
            _check_options(command.get("options") or [], f"{i}.options", depth=0)
        else:
            _length(command.get("name"), f"{i}.name", 32, 1)
            if command.get("description"):
                raise invalid(f"{i}.description", "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                              "Context menu commands cannot have a description")  # fmt: skip
            if command.get("options"):
                raise invalid(f"{i}.options", "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                              "Context menu commands cannot have options")  # fmt: skip
        if _command_chars(command) > MAX_COMMAND_CHARS:
            raise invalid(
                f"{i}", "APPLICATION_COMMAND_TOO_LARGE", f"Command exceeds maximum size ({MAX_COMMAND_CHARS})"
            )
    if counts[1] > MAX_SLASH_COMMANDS:
        raise ApiError(400, 30032, f"Maximum number of application commands reached ({MAX_SLASH_COMMANDS})")
    if max(counts[2], counts[3]) > MAX_MENU_COMMANDS:
        raise ApiError(400, 30032, f"Maximum number of context menu commands reached ({MAX_MENU_COMMANDS})")


def _check_slash_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not _SLASH_NAME.match(name) or name != name.lower():
        raise invalid(path, "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")


def _check_options(options: list[dict[str, Any]], path: str, *, depth: int) -> None:
    if len(options) > MAX_OPTIONS:
        raise too_long(path, MAX_OPTIONS)
    subcommands = [o for o in options if o.get("type") in (1, 2)]
    if subcommands and len(subcommands) != len(options):
        raise invalid(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Sub-commands cannot mix with options")
    optional_seen = False
    names: set[str] = set()
    for k, option in enumerate(options):
        at = f"{path}.{k}"
        _check_slash_name(option.get("name"), f"{at}.name")
        if option["name"] in names:
            raise invalid(
                f"{at}.name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"
            )
        names.add(option["name"])
        _length(option.get("description"), f"{at}.description", 100, 1)
        kind = option.get("type")
        if kind in (1, 2):
            if kind == 2 and depth > 0 or kind == 1 and depth > 1:
                raise invalid(f"{at}.type", "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Sub-commands nest too deep")
            _check_options(option.get("options") or [], f"{at}.options", depth=depth + 1)
            continue
        if option.get("required"):
            if optional_seen:
                raise invalid(f"{at}.required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                              "Required options must be placed before non-required options")  # fmt: skip
        else:
            optional_seen = True
        choices = option.get("choices") or []
        if len(choices) > MAX_CHOICES:
            raise too_long(f"{at}.choices", MAX_CHOICES)
        for c, choice in enumerate(choices):
            _length(choice.get("name"), f"{at}.choices.{c}.name", 100, 1)
            if isinstance(choice.get("value"), str):
                _length(choice["value"], f"{at}.choices.{c}.value", 100, 1)


def _command_chars(item: dict[str, Any]) -> int:
    total = len(item.get("name") or "") + len(item.get("description") or "")
    total += sum(len(c.get("name", "")) + len(str(c.get("value", ""))) for c in item.get("choices") or [])
    return total + sum(_command_chars(option) for option in item.get("options") or [])
