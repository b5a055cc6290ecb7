"""Question templates.

The ``paper`` set reproduces the strings the released Spatial-SSRL checkpoints were trained
with, character for character (they are an interface, like a tokenizer's special tokens).
Questions carry one ``<image>`` placeholder per image, in the order of the sample's
``images`` list. The format suffix is kept apart: writers add it where a trainer expects it.
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"

FORMAT_SUFFIX = (
    "You FIRST think about the reasoning process as an internal monologue and then provide "
    "the final answer. The reasoning process MUST BE enclosed within <think> </think> tags. "
    "The final answer MUST BE put in \\boxed{}."
)


def with_format_suffix(question: str) -> str:
    """The full user text a model sees: the question, one space, the format suffix."""
    return f"{question.rstrip()} {FORMAT_SUFFIX}"


def content_parts(question: str, format_suffix: bool = True) -> list[dict]:
    """A question's ``<image>`` placeholders and text as chat content parts, in order:
    ``{"type": "image", "text": None}`` and ``{"type": "text", "text": ...}`` (the shape TRL,
    chat templates and the parquet struct of the trl format all take). The format suffix ends
    the last text part unless ``format_suffix`` is false."""
    text = with_format_suffix(question) if format_suffix else question
    content: list[dict] = []
    for i, piece in enumerate(text.split(IMAGE_TOKEN)):
        if i > 0:
            content.append({"type": "image", "text": None})
        if piece:
            content.append({"type": "text", "text": piece})
    return content


def _number_list(n: int) -> str:
    """'0, 1, 2, and 3' (the paper's Oxford-comma list of labels)."""
    labels = [str(i) for i in range(n)]
    if n == 2:
        return "0 and 1"
    return ", ".join(labels[:-1]) + ", and " + labels[-1]


# Position names for the answer format of the paper's grids and strips.
_PAPER_FORMATS = {
    (2, 2): "TopLeft-TopRight-BottomLeft-BottomRight",
    (1, 3): "Left-Middle-Right",
    (1, 4): "Left-Middle1-Middle2-Right",
    (3, 1): "Top-Middle-Bottom",
    (4, 1): "Top-Middle1-Middle2-Bottom",
}

_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
_DEPTH_FORMATS = {
    2: "Smallest-Largest",
    3: "Smallest-Middle-Largest",
    4: "Smallest-Middle1-Middle2-Largest",
    5: "Smallest-Middle1-Middle2-Middle3-Largest",
}
# How the position question names each facing of the imagined camera.
_FACING_TEXT = {
    "left": "to the left of the image",
    "right": "to the right of the image",
    "toward": "to me",
    "away": "away from me",
}


class PaperPrompts:
    name = "paper"

    def shuffle(self, rows: int, cols: int, masked: bool = False) -> str:
        n = rows * cols
        if rows == 1:
            pieces = f"{n} shuffled horizontal strips"
        elif cols == 1:
            pieces = f"{n} shuffled vertical strips"
        else:
            pieces = f"{n} shuffled patches"
        text = f"The image has been divided into {pieces} labeled {_number_list(n)}."
        if masked:
            text += " One of the four patches is masked completely by white pixels." if n == 4 else (
                f" One of the {n} patches is masked completely by white pixels."
            )
        fmt = _PAPER_FORMATS.get((rows, cols))
        if fmt is None:
            fmt_text = (
                f"where the format lists the labels of the {rows}x{cols} grid (rows top to bottom, "
                "each row left to right) joined by hyphens"
            )
        else:
            fmt_text = f"where the format is '{fmt}'"
        return (
            f"{IMAGE_TOKEN}{text} Based on visual clues such as continuity, alignment, and context, "
            f"answer the correct arrangement of the patches to restore the original image, {fmt_text}."
        )

    def flip(self, rows: int = 2, cols: int = 2) -> str:
        """Flipped patch recognition (the paper's text for 2x2; the same sentence with the
        count and labels adjusted for other grids)."""
        if (rows, cols) == (2, 2):
            return (
                f"{IMAGE_TOKEN}The image has been divided into 4 labeled 0, 1, 2, and 3. One of the four "
                "patches is flipped either horizontally or vertically. Based on visual clues such as "
                "continuity, alignment, and context, answer the correct patch that is flipped and the "
                "direction the flip, where the format is 'Label-Direction'. The direction can only be "
                "0(flipped vertically) or 1(flipped horizontally)."
            )
        n = rows * cols
        return (
            f"{IMAGE_TOKEN}The image has been divided into {n} patches ({rows} rows, {cols} columns) labeled "
            f"{_number_list(n)}, row by row. One of the {n} patches is flipped either horizontally or "
            "vertically. Based on visual clues such as continuity, alignment, and context, answer the "
            "correct patch that is flipped and the direction the flip, where the format is "
            "'Label-Direction'. The direction can only be 0(flipped vertically) or 1(flipped horizontally)."
        )

    def crop(self, n_options: int = 4) -> str:
        """Cropped patch inpainting with ``n_options`` options (the paper's text for four)."""
        t = IMAGE_TOKEN
        if n_options == 4:
            return (
                f"Which image is the missing part in the first image {t}? Based on visual clues such as "
                "alignment, image content, and positional relationship, select one of the four options "
                f"{t}{t}{t}{t} as the final answer. The final answer should be chosen from 'A', 'B', 'C', "
                "and 'D'."
            )
        letters = [f"'{chr(65 + i)}'" for i in range(n_options)]
        choose = " and ".join(letters) if n_options == 2 else ", ".join(letters[:-1]) + ", and " + letters[-1]
        return (
            f"Which image is the missing part in the first image {t}? Based on visual clues such as "
            f"alignment, image content, and positional relationship, select one of the "
            f"{_COUNT_WORDS[n_options]} options {t * n_options} as the final answer. The final answer "
            f"should be chosen from {choose}."
        )

    def depth(self, k: int = 3) -> str:
        """Regional depth ordering with ``k`` marked regions (the paper's text for k = 3,
        the same sentence with the count and answer format adjusted otherwise)."""
        if k not in _DEPTH_FORMATS:
            raise ValueError(f"depth ordering supports 2 to 5 regions, got {k}")
        word = _COUNT_WORDS[k]
        labels = [str(i) for i in range(1, k + 1)]
        listed = "1 and 2" if k == 2 else ", ".join(labels[:-1]) + ", and " + labels[-1]
        return (
            f"{IMAGE_TOKEN}The original image has {word} regions marked as {listed}. Consider the content, "
            f"positional relationships, depths of the {word} regions and other cues, and sort the depths of "
            f"the {word} regions from smallest to largest from the camera, where the format of the answer is "
            f"'{_DEPTH_FORMATS[k]}'."
        )

    def position(
        self,
        camera_label: int | str,
        target_label: int | str,
        facing: str,
        options: list[str],
        ignore_height: bool,
    ) -> str:
        """Relative 3D position: a camera at marker ``camera_label`` facing ``facing``
        (``left``, ``right``, ``toward``, ``away``); ``options`` in letter order A-D."""
        try:
            facing_text = _FACING_TEXT[facing]
        except KeyError:
            raise ValueError(f"unknown facing {facing!r}; expected one of {', '.join(_FACING_TEXT)}") from None
        if len(options) != 4:
            raise ValueError("the position question has exactly four options")
        listed = "".join(f" {letter}. {text}" for letter, text in zip("ABCD", options))
        height = " and ignore the height difference between the two regions" if ignore_height else ""
        return (
            f"{IMAGE_TOKEN}I've taken an image and there are two regions marked as 1, and 2 on the image. "
            f"Assume that there is a camera at position '{camera_label}' and it's facing {facing_text}. "
            f"According to the camera, where is the region marked '{target_label}'?{listed}. Consider cues "
            f"such as depth, orientation, and 3D spatial relationship{height}. The final answer should be "
            "chosen from 'A', 'B', 'C', and 'D'."
        )


PROMPT_SETS = {"paper": PaperPrompts()}


def get_prompt_set(name: str) -> PaperPrompts:
    try:
        return PROMPT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown prompt set {name!r}; available: {', '.join(sorted(PROMPT_SETS))}") from None
