"""Which model and size a request is made with, and who may use which: servers' defaults and access rules
(`quota_model_defaults`, `quota_model_access`), and the choice each request ends up with (`plan`).

What a request is made with, first match wins:
- model: the member's choice; else, for an edit, reroll or re-render, the original's (if the bot still offers
  it); else the server's default; else the bot's (`GEMINI_MODEL`);
- size: the member's choice; else the original's (same model); else the server's, else `DEFAULT_IMAGE_SIZE`,
  each fitted to the model (a model without that size makes its nearest smaller one);
- aspect ratio: the member's choice; else the original's for a reroll or re-render; else, for a new picture,
  `DEFAULT_ASPECT_RATIO` if the model takes it.
A choice the model lacks is refused with what it offers; nothing is charged and nothing is sent.

Who may use what, in a server: with no rule for everyone (role 0), every model the bot offers at every size.
A rule for everyone limits that to some models up to a size; a role's rule adds to it (members get the union of
their roles' rules, as the most generous role limit wins), so "Pro and 4K" can be a tier that roles unlock.
Outside servers the bot's own offer applies. Each change is audited with the quota changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.errors import ChoiceRefused, InvalidRequest
from bot.models import IMAGE_SIZES, ImageOptions, ImageRequest, RequestKind
from bot.ports import Plan
from bot.providers.registry import ModelRegistry, ModelSpec
from bot.storage.db import Database

log = logging.getLogger(__name__)

EVERYONE = 0  # role id of a rule for every member of the server
ALL_MODELS = "*"
# The same picture again: its shape too (an edit keeps the input's shape by itself).
_KEEPS_RATIO = (RequestKind.REROLL, RequestKind.RENDER)


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Models (None: every model the bot offers) up to a size."""

    models: tuple[str, ...] | None
    max_size: str

    def allows(self, model: str, size: str) -> bool:
        in_models = self.models is None or model in self.models
        return in_models and IMAGE_SIZES.index(size) <= IMAGE_SIZES.index(self.max_size)


OPEN = AccessRule(None, IMAGE_SIZES[-1])


@dataclass(frozen=True, slots=True)
class ServerModels:
    """A server's model settings as an admin sees them."""

    guild_id: int
    default_model: str | None  # None: the bot's
    default_size: str | None
    rules: dict[int, AccessRule]  # role id (EVERYONE for the server-wide rule) -> rule


def member_rules(rules: dict[int, AccessRule], role_ids: Iterable[int]) -> list[AccessRule]:
    """The rules that apply to a member: everyone's (or the open one when there is none) and their roles'."""
    found = [rules.get(EVERYONE, OPEN)]
    found += [rules[r] for r in role_ids if r in rules and r != EVERYONE]
    return found


def allowed(rules: Sequence[AccessRule], model: str, size: str) -> bool:
    return any(rule.allows(model, size) for rule in rules)


def offer(registry: ModelRegistry, rules: Sequence[AccessRule]) -> list[tuple[ModelSpec, tuple[str, ...]]]:
    """What a member may pick: each enabled model with the sizes they may use it at (models with none left out)."""
    found = []
    for spec in registry.enabled:
        sizes = tuple(size for size in spec.sizes if allowed(rules, spec.id, size))
        if sizes:
            found.append((spec, sizes))
    return found


def describe_offer(choices: Sequence[tuple[ModelSpec, tuple[str, ...]]]) -> tuple[str, ...]:
    return tuple(f"{spec.name} ({', '.join(sizes)})" for spec, sizes in choices)


class ModelAccess:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        *,
        default_size: str = "1K",
        default_ratio: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.registry = registry
        self.default_size = default_size
        self.default_ratio = default_ratio
        self.clock = clock

    # --- the pipeline's side ----------------------------------------------------------------------------------

    async def plan(self, request: ImageRequest, original: ImageOptions | None = None) -> Plan:
        """Choose the model, size and ratio of `request` (see the module's rules) and price it, or raise
        `ChoiceRefused` with what is possible. `original`: the options of the picture it edits, rerolls or
        re-renders."""
        server = await self.server(request.guild_id) if request.guild_id else None
        rules = member_rules(server.rules if server else {}, request.role_ids)
        chosen = request.options
        spec = self._model(chosen, original, server)
        size = self._size(spec, chosen, original, server)
        ratio = chosen.aspect_ratio
        if ratio is not None and ratio not in spec.ratios:
            raise ChoiceRefused("aspect ratio", ratio, model=spec.name, possible=spec.ratios)
        if ratio is None and request.kind in (RequestKind.IMAGINE, RequestKind.CLI) and request.parent_id is None:
            ratio = self.default_ratio if self.default_ratio in spec.ratios else None
        elif ratio is None and request.kind in _KEEPS_RATIO and original is not None:
            ratio = original.aspect_ratio if original.aspect_ratio in spec.ratios else None
        if not allowed(rules, spec.id, size):
            model_ok = any(allowed(rules, spec.id, s) for s in spec.sizes)
            raise ChoiceRefused(
                "size" if model_ok else "model",
                size if model_ok else spec.name,
                model=spec.name,
                possible=describe_offer(offer(self.registry, rules)),
                not_allowed=True,
            )
        options = dataclasses.replace(chosen, model=spec.id, size=size, aspect_ratio=ratio)
        return Plan(dataclasses.replace(request, options=options), spec, self.registry.price(spec, size, options.tier))

    def _model(self, chosen: ImageOptions, original: ImageOptions | None, server: ServerModels | None) -> ModelSpec:
        if chosen.model is not None:
            return self._enabled(chosen.model)
        for candidate in (original.model if original else None, server.default_model if server else None):
            if candidate and self.registry.is_enabled(candidate):
                return self.registry.get(candidate)
        return self.registry.default

    def _size(
        self, spec: ModelSpec, chosen: ImageOptions, original: ImageOptions | None, server: ServerModels | None
    ) -> str:
        if chosen.size is not None:
            if chosen.size not in spec.sizes:
                raise ChoiceRefused("size", chosen.size, model=spec.name, possible=spec.sizes)
            return chosen.size
        if original is not None and original.model == spec.id and original.size in spec.sizes:
            return original.size
        wanted = server.default_size if server and server.default_size else self.default_size
        return spec.fit_size(wanted)

    # --- what members and admins see ------------------------------------------------------------------------

    async def server(self, guild_id: int) -> ServerModels:
        # One statement (one trip to the database thread): every request reads it.
        rows = await self.db.fetchall(
            "SELECT NULL, model, size FROM quota_model_defaults WHERE guild_id = ?"
            " UNION ALL SELECT role_id, models, max_size FROM quota_model_access WHERE guild_id = ?",
            (guild_id, guild_id),
        )
        default_model = default_size = None
        rules: dict[int, AccessRule] = {}
        for role_id, models, size in rows:
            if role_id is None:
                default_model, default_size = models, size
            else:
                rules[role_id] = AccessRule(None if models == ALL_MODELS else tuple(json.loads(models)), size)
        return ServerModels(guild_id, default_model, default_size, dict(sorted(rules.items())))

    async def offer_for(self, guild_id: int | None, role_ids: Iterable[int]) -> list[tuple[ModelSpec, tuple[str, ...]]]:
        """What a member may pick here."""
        server = await self.server(guild_id) if guild_id else None
        return offer(self.registry, member_rules(server.rules if server else {}, role_ids))

    # --- server admins' changes (audited in quota_audit) -------------------------------------------------------

    async def set_default(self, guild_id: int, model: str | None, size: str | None, *, actor_id: int) -> ServerModels:
        """The server's default model and size (None: the bot's). The default must be something everyone here
        may use, or members without a role would be refused whenever they choose nothing."""
        spec = self._enabled(model) if model else None
        if size is not None and spec is not None and size not in spec.sizes:
            raise ChoiceRefused("size", size, model=spec.name, possible=spec.sizes)
        current = await self.server(guild_id)
        everyone = [current.rules.get(EVERYONE, OPEN)]
        check = spec or self.registry.default
        if not allowed(everyone, check.id, check.fit_size(size or self.default_size)):
            raise InvalidRequest(
                f"{check.name} at {check.fit_size(size or self.default_size)} is not something everyone here may "
                "use; allow it for everyone first (`/models-admin access`), or pick another default."
            )
        detail = f"{spec.id if spec else 'bot default'} {size or 'bot default size'}"
        if spec is None and size is None:
            sql, params = "DELETE FROM quota_model_defaults WHERE guild_id = ?", (guild_id,)
        else:
            sql = (
                "INSERT INTO quota_model_defaults (guild_id, model, size) VALUES (?,?,?)"
                " ON CONFLICT (guild_id) DO UPDATE SET model = excluded.model, size = excluded.size"
            )
            params = (guild_id, spec.id if spec else None, size)  # type: ignore[assignment]
        await self._change(guild_id, actor_id, "set_model_default", sql, params, None, detail)
        return await self.server(guild_id)

    async def set_rule(
        self, guild_id: int, role_id: int, models: Sequence[str] | None, max_size: str | None, *, actor_id: int
    ) -> ServerModels:
        """What everyone (role_id EVERYONE) or a role may use: `models` (ids or names; None: every model the bot
        offers) up to `max_size`. `max_size` None removes the rule."""
        if max_size is None:
            sql, params = "DELETE FROM quota_model_access WHERE guild_id = ? AND role_id = ?", (guild_id, role_id)
            detail = "removed"
        else:
            if max_size not in IMAGE_SIZES:
                raise InvalidRequest(f"Unknown size {max_size!r}; choose one of {', '.join(IMAGE_SIZES)}.")
            ids = None if models is None else tuple(dict.fromkeys(self._enabled(m).id for m in models))
            if ids is not None and not ids:
                raise InvalidRequest("Name at least one model (or leave `models` empty for every model).")
            stored = ALL_MODELS if ids is None else json.dumps(list(ids))
            sql = (
                "INSERT INTO quota_model_access (guild_id, role_id, models, max_size) VALUES (?,?,?,?)"
                " ON CONFLICT (guild_id, role_id) DO UPDATE SET models = excluded.models,"
                " max_size = excluded.max_size"
            )
            params = (guild_id, role_id, stored, max_size)  # type: ignore[assignment]
            detail = f"{'every model' if ids is None else ', '.join(ids)} up to {max_size}"
        await self._change(guild_id, actor_id, "set_model_access", sql, params, role_id or None, detail)
        return await self.server(guild_id)

    def _enabled(self, name: str) -> ModelSpec:
        spec = self.registry.find(name)
        if spec is None:
            names = tuple(m.name for m in self.registry.enabled)
            raise ChoiceRefused("model", name, model=name, possible=names)
        return spec

    async def _change(
        self,
        guild_id: int,
        actor_id: int,
        action: str,
        sql: str,
        params: tuple[object, ...],
        role_id: int | None,
        detail: str,
    ) -> None:
        now = self.clock()
        async with self.db.transaction() as tx:
            await tx.execute(sql, params)
            await tx.execute(
                "INSERT INTO quota_audit (at, guild_id, actor_id, action, role_id, detail) VALUES (?,?,?,?,?,?)",
                (now, guild_id, actor_id, action, role_id, detail),
            )
        log.info("server %s: %s by %s: %s", guild_id, action, actor_id, detail)
