"""Reading a model response: the think block, the answer region and the boxes in it.

Everything here runs in time linear in the response length, whatever the response holds.
Regular expressions are used only in shapes that cannot backtrack badly (a literal ``<``,
whitespace runs separated by literals, no nested quantifiers); braces are matched by hand
with ``str.find``/``str.count`` inside a window of bounded size, and the number of boxes
examined is bounded too. A megabyte of hostile text (deeply nested braces, thousands of
boxes, unclosed tags) is dealt with in milliseconds (see ``bench/bench_reward.py``).

Vocabulary:

- *opening tag*: ``<think>``, with up to 16 whitespace characters on either side of the
  word inside the angle brackets (``< think >``);
- *closing tag*: ``</think>``, likewise (``</ think>``, ``< /think >``);
- *answer region*: the text after the last closing tag, cut short at any opening tag that
  follows it. A response with no tag at all is all answer region; a response with an
  opening tag and no closing tag has none (it never finished thinking);
- *box*: ``\\boxed{...}`` with balanced braces inside. Only boxes in the answer region count.
"""

from __future__ import annotations

import re
from typing import NamedTuple

BOX_OPEN = "\\boxed{"
# Up to 16 whitespace characters are allowed inside the tags, as Qwen models sometimes emit
# them (``< think >``, ``</ think>``). Bounded runs keep every failed attempt O(1).
_WS = r"\s{0,16}"
_OPEN_TAG = re.compile("<" + _WS + "think" + _WS + ">")
_CLOSE_TAG = re.compile("<" + _WS + "/" + _WS + "think" + _WS + ">")
_OPEN_AT_START = re.compile(r"\s*<" + _WS + "think" + _WS + ">")
# The closing tag spelled backwards, searched in the reversed string: the first hit there
# is the last closing tag of the response, found in one forward scan.
_CLOSE_TAG_REVERSED = re.compile(">" + _WS + "kniht" + _WS + "/" + _WS + "<")

DEFAULT_MAX_BOXES = 10
DEFAULT_MAX_ANSWER_CHARS = 1000


class ParsedResponse(NamedTuple):
    """What :func:`parse_response` found.

    ``boxes`` holds the raw contents of the complete boxes of the answer region, in order
    (at most ``max_boxes + 1`` of them). ``box_problem`` names why the final answer cannot
    be read even though boxes may exist: ``"unclosed_box"`` (a ``\\boxed{`` after the last
    complete box never closes), ``"box_too_long"`` (its content exceeds the character
    limit) or ``"too_many_boxes"``. ``format_ok`` / ``format_reason`` report the format
    check; ``region_reason`` is ``"unclosed_think"`` when there is no answer region (a
    ``<think>`` that never closes) and ``"box_inside_think"`` when the answer region has no
    box but the think block has one.
    """

    format_ok: bool
    format_reason: str | None
    region_reason: str | None
    boxes: tuple[str, ...]
    box_problem: str | None

    @property
    def final_box(self) -> str | None:
        if self.box_problem is not None or not self.boxes:
            return None
        return self.boxes[-1]


def _match_close(text: str, start: int, end: int) -> int:
    """Index of the ``}`` closing a brace opened just before ``start``, searching only
    ``text[start:end]``; -1 when it does not close there. The loop runs once per ``}``
    in the window, and every step inside it is a C-level scan."""
    depth = 0
    pos = start
    while True:
        q = text.find("}", pos, end)
        if q == -1:
            return -1
        depth += text.count("{", pos, q)
        if depth == 0:
            return q
        depth -= 1
        pos = q + 1


def scan_boxes(
    text: str,
    start: int = 0,
    end: int | None = None,
    max_boxes: int = DEFAULT_MAX_BOXES,
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
) -> tuple[list[str], str | None]:
    """Complete top-level boxes of ``text[start:end]`` from left to right.

    A box nested inside another is part of the outer box's content. Scanning stops at the
    first box that does not close (within ``max_answer_chars`` characters of content, and
    before ``end``): everything after an unclosed ``\\boxed{`` belongs to it, so it is the
    last thing the response says and the final answer is malformed. Scanning also stops
    once more than ``max_boxes`` boxes were seen. Returns the contents and the problem
    (``None``, ``"unclosed_box"``, ``"box_too_long"`` or ``"too_many_boxes"``).
    """
    if end is None:
        end = len(text)
    contents: list[str] = []
    pos = start
    width = len(BOX_OPEN)
    while True:
        p = text.find(BOX_OPEN, pos, end)
        if p == -1:
            return contents, None
        c = p + width
        window_end = min(end, c + max_answer_chars + 1)
        q = _match_close(text, c, window_end)
        if q == -1:
            return contents, ("unclosed_box" if window_end == end else "box_too_long")
        contents.append(text[c:q])
        if len(contents) > max_boxes:
            return contents, "too_many_boxes"
        pos = q + 1


def parse_response(
    response: str,
    max_boxes: int = DEFAULT_MAX_BOXES,
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
) -> ParsedResponse:
    """Split a response into its think block and answer region and read the boxes.

    Format rule (all must hold): the response starts (after whitespace) with an opening
    tag; a closing tag follows; there is exactly one think block (no other opening tag
    before the closing one, no tag of either kind after it); the answer region holds at
    least one complete box and no unclosed ``\\boxed{`` after the last one.
    """
    text = response
    n = len(text)
    region_reason = None
    format_reason = None
    if "think" in text:
        first_close = _CLOSE_TAG.search(text)
        if first_close is not None:
            if _CLOSE_TAG.search(text, first_close.end()) is None:
                region_start = first_close.end()
                single_close = True
            else:
                region_start = n - _CLOSE_TAG_REVERSED.search(text[::-1]).start()
                single_close = False
            reopened = _OPEN_TAG.search(text, region_start)
            region_end = n if reopened is None else reopened.start()
            opening = _OPEN_AT_START.match(text)
            if opening is None:
                format_reason = "no_think_at_start"
            elif not single_close or reopened is not None:
                format_reason = "several_think_blocks"
            elif _OPEN_TAG.search(text, opening.end(), first_close.start()) is not None:
                format_reason = "nested_think"
        elif _OPEN_TAG.search(text) is not None:
            region_start = region_end = -1
            region_reason = format_reason = "unclosed_think"
        else:
            region_start, region_end = 0, n
            format_reason = "no_think_at_start"
    else:
        region_start, region_end = 0, n
        format_reason = "no_think_at_start"

    if region_reason is None:
        boxes, box_problem = scan_boxes(text, region_start, region_end, max_boxes, max_answer_chars)
        if not boxes and box_problem is None and region_start > 0 and text.find(BOX_OPEN, 0, region_start) != -1:
            region_reason = "box_inside_think"
    else:
        boxes, box_problem = [], None
    if format_reason is None:
        if box_problem == "unclosed_box" or box_problem == "box_too_long":
            format_reason = box_problem
        elif not boxes:
            format_reason = "no_box"
    return ParsedResponse(format_reason is None, format_reason, region_reason, tuple(boxes), box_problem)


def answer_region(response: str) -> str | None:
    """The text after the last closing think tag, cut short at an opening tag after it; the
    whole response when it has no tag; None when a think block opens and never closes."""
    if "think" not in response:
        return response
    if _CLOSE_TAG.search(response) is None:
        return None if _OPEN_TAG.search(response) is not None else response
    start = len(response) - _CLOSE_TAG_REVERSED.search(response[::-1]).start()
    reopened = _OPEN_TAG.search(response, start)
    return response[start:] if reopened is None else response[start:reopened.start()]


def check_format(response: str) -> bool:
    """True when the response is one think block followed by a complete ``\\boxed{}``."""
    return parse_response(response).format_ok


def extract_answer(response: str) -> str | None:
    """Raw content of the final box of the answer region (None when there is none, when
    it is unclosed, or when the answer sits only inside the think block)."""
    return parse_response(response).final_box
