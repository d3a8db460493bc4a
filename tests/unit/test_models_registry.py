"""The model registry (prices, credits, real cost, overrides, unknown ids), which kept answers go back with an
edit, what a request is billed, and how a request's model and size are chosen."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.editing.conversation import StoredTurn, as_turns, choose_turns, signed
from bot.errors import Charge, ChoiceRefused, TextOnlyAnswer, UpstreamTimeout, UpstreamUnavailable
from bot.models import GeneratedImage, ImageOptions, ImageRequest, RequestKind, Usage
from bot.providers.billing import Bill
from bot.providers.registry import ModelRegistry, parse_prices
from bot.quota.access import EVERYONE, AccessRule, ModelAccess, ServerModels, allowed, member_rules

PRO, LITE, DEFAULT, FLASH = (
    "gemini-3-pro-image",
    "gemini-3.1-flash-lite-image",
    "gemini-nano-banana-2.1",
    "gemini-3.1-flash-image",
)

# --- credits and prices -------------------------------------------------------------------------------------

# (model, size, tier) -> credits: price / $0.0336 (the default's cheapest standard picture), rounded up.
TABLE = [
    (DEFAULT, "1K", "standard", 1),  # 0.0336 / 0.0336, exactly: integer micro-dollars, no float fuzz
    (DEFAULT, "2K", "standard", 2),  # 0.0504 -> 1.5
    (DEFAULT, "4K", "standard", 4),  # 0.113 -> 3.36
    (PRO, "2K", "standard", 4),  # 0.134 -> 3.99
    (PRO, "4K", "standard", 8),  # 0.24 -> 7.14
    (PRO, "4K", "batch", 4),  # half
    (LITE, "1K", "flex", 1),  # 0.0168 -> at least one
    (FLASH, "512", "standard", 2),  # 0.045 -> 1.34
    ("gemini-2.5-flash-image", "1K", "standard", 2),  # 0.039 -> 1.16
]


@pytest.mark.parametrize(("model", "size", "tier", "credits"), TABLE)
def test_credits_follow_the_price_table_rounded_up(model, size, tier, credits):
    registry = ModelRegistry.build(enabled=[PRO, LITE, FLASH, "gemini-2.5-flash-image"])
    assert registry.credits(registry.get(model), size, tier) == credits


def test_the_legacy_default_keeps_one_credit_per_image():
    """An operator who stays on 2.5 keeps the old meaning: one image, one credit."""
    registry = ModelRegistry.build("gemini-2.5-flash-image")
    assert registry.credit_usd == 0.039 and registry.credits(registry.default, "1K") == 1


def test_operator_prices_override_the_table_and_move_the_relax_lanes():
    registry = ModelRegistry.build(enabled=[PRO], prices=f"{PRO}:4K=0.30,{PRO}:2K:flex=0.01,{PRO}:text=20")
    pro = registry.get(PRO)
    assert (pro.prices["standard"]["4K"], pro.prices["flex"]["4K"], pro.prices["batch"]["4K"]) == (0.30, 0.15, 0.15)
    assert pro.prices["flex"]["2K"] == 0.01 and pro.prices["standard"]["2K"] == 0.134 and pro.text_rate == 20
    assert registry.credits(pro, "4K") == 9  # 0.30 / 0.0336 = 8.9


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("gemini-3-pro-image:8K=1", "is not model:SIZE"),
        ("gemini-3-pro-image:4K=cheap", "'cheap' is not a number"),
        ("gemini-3-pro-image:4K=-1", "between 0 and 1000"),
    ],
)
def test_a_bad_price_names_the_entry(text, words):
    with pytest.raises(ValueError, match=words):
        parse_prices(text)


def test_a_price_for_a_size_the_model_lacks_is_refused():
    with pytest.raises(ValueError, match="a size it does not make"):
        ModelRegistry.build(prices=f"{LITE}:4K=0.1")


def test_an_unknown_id_gets_conservative_capabilities_and_the_dearest_1k_price():
    registry = ModelRegistry.build(enabled=["gemini-9-image-experimental"])
    spec = registry.get("gemini-9-image-experimental")
    assert not spec.known and not spec.thinks and not spec.sends_size
    assert (spec.sizes, len(spec.ratios), spec.max_inputs) == (("1K",), 10, 3)
    assert registry.price_usd(spec, "1K") == registry.price_usd(registry.get(PRO), "1K")


def test_a_retired_id_is_refused_with_its_successor():
    with pytest.raises(ValueError, match="use gemini-3-pro-image"):
        ModelRegistry.build(enabled=["gemini-3-pro-image-preview"])


def test_real_cost_is_image_tokens_at_the_picture_price_and_words_at_their_rates():
    registry = ModelRegistry.build(enabled=[PRO])
    pro = registry.get(PRO)
    usage = Usage(prompt_tokens=1000, output_tokens=2000 + 300, image_tokens=2000, thinking_tokens=200)
    # 4K: the picture's 2000 tokens are exactly its $0.24; 300 text+thinking at $12/M; 1000 prompt at $2/M.
    assert registry.cost_usd(pro, "4K", usage) == pytest.approx(0.24 + 300 * 12e-6 + 1000 * 2e-6)
    assert registry.cost_usd(pro, "4K", usage, "batch") == pytest.approx((0.24 + 300 * 12e-6 + 1000 * 2e-6) / 2)


# --- which kept answers go back with an edit -------------------------------------------------------------------


def answer(signed_picture: bool = True) -> str:
    picture = {"inlineData": {"mimeType": "image/jpeg", "data": "AAAA"}}
    if signed_picture:
        picture["thoughtSignature"] = "c2ln"
    draft = {"inlineData": {"mimeType": "image/jpeg", "data": "BBBB"}, "thought": True}  # drafts are never signed
    return json.dumps({"role": "model", "parts": [{"text": "plan", "thought": True}, draft, picture]})


def test_an_answer_is_sent_back_only_if_every_picture_is_signed():
    assert signed(answer()) and not signed(answer(signed_picture=False))
    assert not signed(json.dumps({"role": "model", "parts": [{"text": "words only"}]}))
    assert not signed("not json")


def test_turns_are_the_newest_steps_of_the_same_model_within_the_budget():
    chain = [  # newest first: the parent, its parent, ...
        StoredTurn(5, "add a moon", PRO, 400),
        StoredTurn(4, "make it night", PRO, 400),
        StoredTurn(3, "a fox", "gemini-nano-banana-2.1", 400),  # another model: the conversation breaks here
        StoredTurn(2, "older", PRO, 400),
    ]
    assert [t.generation_id for t in choose_turns(chain, PRO, 3, 10_000)] == [4, 5]  # oldest first
    assert [t.generation_id for t in choose_turns(chain, PRO, 1, 10_000)] == [5]
    assert [t.generation_id for t in choose_turns(chain, PRO, 3, 799)] == [5]  # the byte budget
    assert choose_turns([StoredTurn(5, "x", None, 0)], PRO, 3, 10_000) == []  # nothing kept: a fresh picture


def test_an_unsigned_answer_cuts_the_turns_back_to_the_newest_signed_ones():
    chosen = [StoredTurn(4, "make it night", PRO, 1), StoredTurn(5, "add a moon", PRO, 1)]
    turns = as_turns(chosen, {4: answer(signed_picture=False), 5: answer()})
    assert [t.prompt for t in turns] == ["add a moon"]
    assert as_turns(chosen, {4: answer(), 5: answer(signed_picture=False)}) == ()


# --- what a request may have cost -------------------------------------------------------------------------------


def failed(exc, *, billed=None, cost=None, charges=()):
    exc.billed, exc.cost_usd, exc.charges = billed, cost, tuple(charges)
    return exc


def test_a_bill_counts_what_each_call_may_have_cost():
    bill = Bill(0.0336)
    for exc in (
        failed(TextOnlyAnswer("which fox?"), billed=True, cost=0.0004),  # answered: its tokens
        failed(UpstreamTimeout("stalled")),  # nobody could tell: a timeout counts at the estimate
        failed(UpstreamUnavailable("503"), billed=False),  # refused before any work
        failed(UpstreamUnavailable("via a chain"), charges=[Charge("gw", "m", 0.05, "X"), Charge("g", "m", None, "Y")]),
    ):
        bill.started()
        bill.failed(exc)
    bill.started()
    bill.failed(asyncio.CancelledError())  # cut off mid-call: it may have reached the provider
    bill.started()
    bill.answered(GeneratedImage(b"", "image/png", "m", cost_usd=0.035))
    assert bill.calls == 6
    assert bill.total_usd == pytest.approx(0.0004 + 0.0336 + 0 + (0.05 + 0.0336) + 0.0336 + 0.035)


# --- which model and size a request gets ----------------------------------------------------------------------


class NoDatabase:
    """ModelAccess.plan reads a server only for guild requests; these are DMs or have the server given."""


def access(**settings) -> ModelAccess:
    registry = ModelRegistry.build(enabled=[PRO, LITE])
    return ModelAccess(NoDatabase(), registry, **settings)  # type: ignore[arg-type]


def ask(kind=RequestKind.IMAGINE, **options) -> ImageRequest:
    return ImageRequest(user_id=1, channel_id=2, prompt="x", kind=kind, options=ImageOptions(**options))


async def test_the_choice_falls_back_to_the_original_then_the_bots_default():
    plan = await access(default_size="2K", default_ratio="16:9").plan(ask())
    assert (plan.request.options.model, plan.request.options.size, plan.request.options.aspect_ratio) == (
        DEFAULT,
        "2K",
        "16:9",
    )
    assert plan.price.credits == 2
    # A Lite default size of 2K fits down to its 1K; an edit keeps the original's model and size.
    assert (await access(default_size="2K").plan(ask(model=LITE))).request.options.size == "1K"
    kept = await access().plan(ask(RequestKind.EDIT), ImageOptions(model=PRO, size="4K"))
    assert (kept.request.options.model, kept.request.options.size, kept.price.credits) == (PRO, "4K", 8)


@pytest.mark.parametrize(
    ("options", "what", "possible"),
    [
        ({"model": LITE, "size": "4K"}, "size", ("1K",)),
        ({"model": PRO, "aspect_ratio": "8:1"}, "aspect ratio", None),
        ({"model": "gemini-2.5-flash-image"}, "model", ("Nano Banana 2.1", "Nano Banana Pro", "Nano Banana 2 Lite")),
    ],
)
async def test_a_choice_the_model_lacks_or_the_bot_does_not_offer_is_refused(options, what, possible):
    with pytest.raises(ChoiceRefused) as info:
        await access().plan(ask(**options))
    assert info.value.what == what and (possible is None or info.value.possible == possible)


def test_role_rules_add_to_everyones():
    rules = {EVERYONE: AccessRule((DEFAULT,), "2K"), 77: AccessRule((PRO,), "4K")}
    server = ServerModels(1, None, None, rules)
    member, supporter = member_rules(server.rules, ()), member_rules(server.rules, (77,))
    assert allowed(member, DEFAULT, "2K") and not allowed(member, DEFAULT, "4K") and not allowed(member, PRO, "1K")
    assert allowed(supporter, PRO, "4K") and allowed(supporter, DEFAULT, "1K") and not allowed(supporter, DEFAULT, "4K")
    assert allowed(member_rules({}, ()), PRO, "4K")  # no rule at all: everything the bot offers
