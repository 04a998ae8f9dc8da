"""Keeping the conversation within the model's context window.

A prompt that outgrows the window fails in one of two bad ways: llama.cpp's server
refuses it (HTTP 500 or 400), ollama silently drops the oldest messages, the issue
text among them. So before each call the loop fits the conversation into the room
the window leaves after the reply (`num_ctx - num_predict`, less a margin): the
system prompt and the issue always stay; old observations are shortened first, then
cut to one line, then the oldest steps are folded into a list of earlier commands;
the latest step is shortened last.

Tokens are estimated from characters. The ratio starts cautious (3 characters a
token) and follows the server's own count of each prompt (`prompt_eval_count`),
never above 4: a server that counts only the tokens its cache did not hold reports
too few, and the cap keeps that from letting a prompt overflow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

CHARS_PER_TOKEN = 3.0
MAX_CHARS_PER_TOKEN = 4.0
MIN_CHARS_PER_TOKEN = 1.0
MESSAGE_TOKENS = 6  # what a chat template adds around each message
EARLIER_LINES = 12  # of the list of steps folded away, the latest shown

Message = dict[str, str]


@dataclass(frozen=True)
class Turn:
    """One exchange after the task: the model's reply and what answered it, in forms
    from the fullest to the shortest (each a pair: reply, answer), and one line for
    the list of earlier steps."""

    forms: tuple[tuple[str, str], ...]
    line: str

    def form(self, level: int) -> tuple[str, str]:
        return self.forms[min(level, len(self.forms) - 1)]


class Window:
    def __init__(self, size: int, reply_room: int) -> None:
        self.size = size
        self.reply_room = reply_room
        self.chars_per_token = CHARS_PER_TOKEN
        self.largest_prompt = 0  # the largest prompt the server counted

    @property
    def room(self) -> int:
        """Prompt tokens allowed: the window less the reply's room and a margin."""
        return self.size - self.reply_room - max(32, self.size // 32)

    def tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        chars = sum(len(m["content"]) for m in messages)
        return int(chars / self.chars_per_token) + MESSAGE_TOKENS * len(messages)

    def chars(self, tokens: int) -> int:
        return max(0, int(tokens * self.chars_per_token))

    def calibrate(self, messages: Sequence[Mapping[str, str]], prompt_tokens: int) -> None:
        """Learn the ratio from the server's count of the prompt just sent."""
        if prompt_tokens <= 0:
            return
        self.largest_prompt = max(self.largest_prompt, prompt_tokens)
        chars = sum(len(m["content"]) for m in messages)
        text_tokens = prompt_tokens - MESSAGE_TOKENS * len(messages)
        ratio = chars / text_tokens if text_tokens > 0 else MAX_CHARS_PER_TOKEN
        self.chars_per_token = min(MAX_CHARS_PER_TOKEN, max(MIN_CHARS_PER_TOKEN, ratio))

    def shrink(self) -> None:
        """The server refused a prompt as too long: estimate more cautiously."""
        self.chars_per_token = max(MIN_CHARS_PER_TOKEN, self.chars_per_token * 0.75)

    def output_chars(self, limit: int) -> int:
        """Characters of a command's output to show: `limit`, or less in a small window
        (a third of the room)."""
        return max(200, min(limit, self.chars(self.room // 3)))

    def fit(
        self, head: Sequence[Message], turns: Sequence[Turn], earlier: str
    ) -> list[Message] | None:
        """The fullest conversation that fits: `head` (the system prompt and the task),
        then the turns, shortened as little as needed; None if even the head and the
        latest turn at their shortest do not fit. `earlier` heads the list of folded
        steps, which is appended to the last message of `head`."""
        for dropped, levels in _plans(len(turns)):
            messages = _render(head, turns, dropped, levels, earlier)
            if self.tokens(messages) <= self.room:
                return messages
        return None


def _plans(count: int) -> Iterator[tuple[int, tuple[int, ...]]]:
    """(turns folded away, a detail level per kept turn: 0 full, 1 shortened, 2 one
    line), from the most to the least detail."""
    yield 0, (0,) * count
    for recent in (2, 1):
        for level in (1, 2):
            yield 0, tuple(level if i < count - recent else 0 for i in range(count))
    for dropped in range(1, count):
        yield dropped, (2,) * (count - dropped - 1) + (0,)
    if count:
        yield count - 1, (1,)
        yield count - 1, (2,)
        yield count, ()


def _render(
    head: Sequence[Message],
    turns: Sequence[Turn],
    dropped: int,
    levels: Sequence[int],
    earlier: str,
) -> list[Message]:
    messages = [dict(m) for m in head]
    if dropped:
        lines = [turn.line for turn in turns[:dropped]]
        shown = lines[-EARLIER_LINES:]
        skipped = (
            f"({len(lines) - len(shown)} more before these)\n" if len(shown) < len(lines) else ""
        )
        messages[-1]["content"] += f"\n\n{earlier}\n{skipped}" + "\n".join(shown)
    for turn, level in zip(turns[dropped:], levels, strict=True):
        reply, answer = turn.form(level)
        messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": answer})
    return messages
