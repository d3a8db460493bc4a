"""`user_message` is the one place failures become words: each cause reads differently and says whose it is."""

from __future__ import annotations

import pytest

from bot import errors as e
from cogs.ui.wording import user_message


def by(exc: e.UpstreamError, name: str = "gemini", label: str = "Google") -> e.UpstreamError:
    """The error as a provider of the chain raised it (the chain names the provider on every error)."""
    exc.blame(name, label)
    return exc


CASES = [
    (e.InvalidRequest("Your prompt is 2001 characters long"), "2001 characters", True),
    (e.ModerationBlocked("gore", "gore"), "This server's rules", True),
    (e.QuotaExceeded(10, 1_800_000_000), "all 10 of your credits", True),
    (e.BudgetExhausted("server", 1_800_000_000), "This server's daily image budget", True),
    (e.BudgetExhausted("global", 1_800_000_000), "The bot's daily image budget", True),
    (e.QueueFull(3), "already have 3 requests", True),
    (by(e.PromptBlocked("SAFETY")), "Google's safety filter refused", True),
    (e.ImageBlocked("IMAGE_SAFETY", "unsafe"), "stopped the image", True),
    (e.TextOnlyAnswer("Which fox?"), "> Which fox?", False),
    (e.GenerationFailed("NO_IMAGE"), "without an image (NO_IMAGE)", True),
    (e.UpstreamUnavailable("503"), "overloaded", True),
    (e.RateLimited("429", 5), "overloaded", True),
    (e.OperatorError("bad key", status=400), "tell the bot's operator", True),
    (e.UpstreamTimeout("slow"), "took too long", True),
    (e.CircuitOpen(1_800_000_000), "failing repeatedly", True),
    (e.ShuttingDown(), "restarting", False),
    (RuntimeError("boom"), "Something went wrong on our side", True),
]


@pytest.mark.parametrize(
    "exc,words,ephemeral", CASES, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else ""
)
def test_each_cause_has_its_own_words(exc, words, ephemeral):
    message = user_message(exc)
    assert words in message.text and message.ephemeral is ephemeral
    assert len(message.text) <= 2000  # fits one Discord message


@pytest.mark.parametrize("exc", [c[0] for c in CASES if isinstance(c[0], e.UpstreamError | e.ShuttingDown)])
def test_every_failure_after_acceptance_says_nothing_was_charged(exc):
    assert "quota was not charged" in user_message(exc).text


def test_whose_rule_it_is():
    in_dm = e.ModerationBlocked("sexual", "nude")
    in_dm.in_dm = True
    assert "The bot's rules" in user_message(in_dm).text and "operator" in user_message(in_dm).text
    csam = user_message(e.ModerationBlocked("csam")).text
    assert "never allows" in csam and "moderators" not in csam


def test_a_block_that_starts_a_cool_down_says_so():
    exc = e.PromptBlocked("SAFETY")
    exc.cooldown_until = 1_800_000_000
    assert "<t:1800000000:R>" in user_message(exc).text


def test_a_long_text_answer_is_clipped_to_fit():
    assert len(user_message(e.TextOnlyAnswer("words " * 2000)).text) <= 2000


def test_a_public_answer_does_not_repeat_the_blocked_term():
    exc = e.ModerationBlocked("hate", "slurword")
    assert "slurword" in user_message(exc).text
    assert "slurword" not in user_message(exc, public=True).text


def test_a_quoted_answer_of_many_short_lines_still_fits_one_message():
    text = "\n".join(f"{i}. ok" for i in range(400))
    assert len(user_message(e.TextOnlyAnswer(text)).text) <= 2000


def test_a_block_of_an_earlier_instruction_says_so():
    exc = e.ModerationBlocked("gore")
    exc.in_history = True
    assert "an earlier instruction" in user_message(exc).text


@pytest.mark.parametrize(
    ("exc", "google", "gateway", "nobody"),
    [
        pytest.param(
            e.PromptBlocked("SAFETY"),
            "🛡️ Google's safety filter refused this prompt (SAFETY). This is Google's rule,",
            "🛡️ OpenRouter's safety filter refused this prompt (SAFETY). This is OpenRouter's rule,",
            "🛡️ The image provider's safety filter refused this prompt (SAFETY). This is the image provider's rule,",
            id="prompt-refused",
        ),
        pytest.param(
            e.ImageBlocked("IMAGE_SAFETY"),
            "🛡️ Google's safety filter stopped the image",
            "🛡️ OpenRouter's safety filter stopped the image",
            "🛡️ The image provider's safety filter stopped the image",
            id="image-refused",
        ),
        pytest.param(
            e.UpstreamUnavailable("503"),
            "Google's image model is overloaded",
            "OpenRouter's image model is overloaded",
            "The image model is overloaded",
            id="overloaded",
        ),
        pytest.param(
            e.RateLimited("429", None),
            "Google's image model is overloaded",
            "OpenRouter's image model is overloaded",
            "The image model is overloaded",
            id="rate-limited",
        ),
        pytest.param(
            e.CircuitOpen(1_800_000_000),
            "Google's image model has been failing",
            "OpenRouter's image model has been failing",
            "The image model has been failing",
            id="circuit",
        ),
        pytest.param(
            e.ModelUnavailable("404", model="m"),
            "this bot's Google project can't use it",
            "this bot's OpenRouter account can't use it",
            "this bot's account can't use it",
            id="model-unavailable",
        ),
    ],
)
def test_upstream_failures_name_the_provider_that_raised_them(exc, google, gateway, nobody):
    assert user_message(exc).text.startswith(nobody) or nobody in user_message(exc).text
    assert "Google" not in user_message(exc).text and "OpenRouter" not in user_message(exc).text
    exc.blame("openrouter", "OpenRouter")
    assert gateway in user_message(exc).text and "Google" not in user_message(exc).text
    exc.unblame()
    exc.blame("gemini", "Google")
    assert google in user_message(exc).text and "OpenRouter" not in user_message(exc).text


def test_the_innermost_provider_keeps_the_blame():
    exc = e.UpstreamUnavailable("503")
    exc.blame("gw", "Gateway")
    exc.blame("gemini", "Google")  # the pipeline's "sole provider" fill-in comes after the chain's
    assert (exc.provider, exc.provider_label) == ("gw", "Gateway")
