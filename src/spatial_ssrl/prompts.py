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

    # -- tasks beyond the paper's five (issue 24) ---------------------------------------

    def distance(self, mode: str) -> str:
        """Metric distance (ours, in the style of the depth question): ``camera``, how far
        the point marked 1 is from the camera (the straight line from the camera's centre
        to the point, not the depth along the viewing axis); ``pair``, how far apart the
        points marked 1 and 2 are in 3D. The answer is a number of metres."""
        fmt = "where the format of the answer is 'X.XX', a single number of meters with two decimals"
        if mode == "camera":
            return (
                f"{IMAGE_TOKEN}The original image has one point marked as 1, at the center of the circle. Consider "
                "the content, the sizes of familiar objects, perspective, depth and other cues, and estimate the "
                "straight-line distance from the camera to the marked point in 3D space, measured from the "
                "camera's center to the point itself (not only its depth along the camera's viewing direction), "
                f"{fmt}."
            )
        if mode == "pair":
            return (
                f"{IMAGE_TOKEN}The original image has two points marked as 1 and 2, each at the center of its "
                "circle. Consider the content, the sizes of familiar objects, perspective, depths of the two "
                "points and other cues, and estimate the straight-line distance between the two points in 3D "
                f"space, {fmt}."
            )
        raise ValueError(f"unknown distance question {mode!r}; expected 'camera' or 'pair'")

    def counting(self, color: str, shape: str, options: list[int]) -> str:
        """Counting: how many shapes of one colour and kind were drawn over the image;
        ``options`` (counts) in letter order."""
        listed = "".join(f" {chr(65 + i)}. {n}" for i, n in enumerate(options))
        letters = [f"'{chr(65 + i)}'" for i in range(len(options))]
        choose = ", ".join(letters[:-1]) + ", and " + letters[-1]
        return (
            f"{IMAGE_TOKEN}Flat colored shapes (circles, squares and triangles, each with a black outline) "
            f"have been drawn on top of this image. Count them carefully, ignoring anything that belongs to "
            f"the picture itself: how many {color} {shape}s have been drawn?{listed}. The final answer should "
            f"be chosen from {choose}."
        )

    def rotation_option(self, turn: int) -> str:
        """The option text of a clockwise turn of 0, 90, 180 or 270 degrees."""
        try:
            return _ROTATION_OPTIONS[turn]
        except KeyError:
            raise ValueError(f"a rotation turn is 0, 90, 180 or 270 degrees, not {turn!r}") from None

    def rotation(self, options: list[str], patch: int | None = None, rows: int = 1, cols: int = 1) -> str:
        """Rotation: the whole image (``patch`` None) or the patch labelled ``patch`` of a
        ``rows`` x ``cols`` grid may be turned; ``options`` in letter order."""
        listed = "".join(f" {chr(65 + i)}. {text}" for i, text in enumerate(options))
        letters = [f"'{chr(65 + i)}'" for i in range(len(options))]
        choose = " and ".join(letters) if len(letters) == 2 else ", ".join(letters[:-1]) + ", and " + letters[-1]
        if patch is None:
            return (
                f"{IMAGE_TOKEN}The image may have been rotated by a multiple of 90 degrees. Based on visual "
                "clues such as the direction of gravity, the positions of the sky and the ground, and the "
                f"orientation of objects and text, how has the image been rotated from its upright view?{listed}. "
                f"The final answer should be chosen from {choose}."
            )
        n = rows * cols
        grid = "" if (rows, cols) == (2, 2) else f" ({rows} rows, {cols} columns)"
        order = "" if (rows, cols) == (2, 2) else ", row by row"
        return (
            f"{IMAGE_TOKEN}The image has been divided into {n} patches{grid} labeled {_number_list(n)}{order}. "
            f"The patch labeled {patch} may have been rotated in place by a multiple of 90 degrees. Based on "
            "visual clues such as continuity, alignment, and context, how has the patch labeled "
            f"{patch} been rotated?{listed}. The final answer should be chosen from {choose}."
        )


    def camera_motion(self, options: list[str]) -> str:
        """Camera motion (ours): two views of one scene, the second taken after the camera
        moved; ``options`` (motion texts such as 'Moved left' or 'Moved forward and turned
        right') in letter order A-D."""
        if len(options) != 4:
            raise ValueError("the camera motion question has exactly four options")
        listed = "".join(f" {letter}. {text}" for letter, text in zip("ABCD", options))
        return (
            f"{IMAGE_TOKEN}{IMAGE_TOKEN}The two images show the same scene taken by one camera, the first image "
            "before and the second image after the camera moved. Directions are as seen from the camera when it "
            "took the first image: 'moved' means the camera shifted that way without turning, 'turned' means it "
            "rotated in place to that side. How did the camera move from the first image to the second?"
            f"{listed}. Consider cues such as parallax between near and far things, what enters or leaves the "
            "view, and how sizes and positions change. The final answer should be chosen from 'A', 'B', 'C', "
            "and 'D'."
        )

    def correspondence(self, n: int = 4) -> str:
        """Cross-view correspondence (ours): point 1 marked in the first image, ``n``
        candidates (3 to 6) marked A, B, ... in the second; which is the same 3D point."""
        if not 3 <= n <= 6:
            raise ValueError(f"the correspondence question has 3 to 6 candidates, got {n}")
        letters = [chr(65 + i) for i in range(n)]
        marked = ", ".join(letters[:-1]) + ", and " + letters[-1]
        choose = ", ".join(f"'{x}'" for x in letters[:-1]) + ", and " + f"'{letters[-1]}'"
        return (
            f"{IMAGE_TOKEN}{IMAGE_TOKEN}The two images show the same scene from two different viewpoints. The first "
            "image has one point marked as 1, at the center of its circle. The second image has "
            f"{('three', 'four', 'five', 'six')[n - 3]} points marked as {marked}, each at the center of its circle, and exactly "
            "one of them is the same point in 3D space as point 1. Based on visual clues such as the surrounding "
            "content, textures, object shapes, and how the viewpoint changed, which point in the second image is "
            f"point 1? The final answer should be chosen from {choose}."
        )

    def temporal(self, k: int, motion: str | None = None, first: int | None = None) -> str:
        """Temporal order (ours): ``k`` frames (3 to 6) of one clip shown in shuffled order,
        labeled 1..k; the answer lists the labels from the earliest frame to the latest. A
        path of a still camera through a still scene reads the same backwards, so the
        question says which way the camera went (``motion``: a key of
        :data:`TEMPORAL_MOTIONS`) or which frame is the earliest (``first``)."""
        if not 3 <= k <= 6:
            raise ValueError(f"the temporal order question has 3 to 6 frames, got {k}")
        if (motion is None) == (first is None):
            raise ValueError("the temporal order question takes a camera motion or the earliest frame, not both")
        shown = " ".join(f"Frame {i}: {IMAGE_TOKEN}" for i in range(1, k + 1))
        labels = [str(i) for i in range(1, k + 1)]
        listed = ", ".join(labels[:-1]) + ", and " + labels[-1]
        if motion is not None:
            try:
                hint = f"While the clip was recorded, the camera {TEMPORAL_MOTIONS[motion]}."
            except KeyError:
                raise ValueError(f"unknown camera motion {motion!r}; expected one of "
                                 f"{', '.join(TEMPORAL_MOTIONS)}") from None
        else:
            if not 1 <= int(first) <= k:
                raise ValueError(f"the earliest frame must be one of the labels 1..{k}, got {first}")
            hint = f"The frame labeled {int(first)} is the earliest of them."
        fmt = "-".join(_ORDINALS[:k])
        return (
            f"{shown} These {_NUMBER_WORDS[k]} frames come from one video clip and are shown in shuffled "
            f"order, labeled {listed}. {hint} Based on visual clues such as how the viewpoint changes, how "
            "objects shift, grow or shrink, and what comes into or leaves view, answer the order in which the "
            f"frames were recorded, from the earliest to the latest, where the format is '{fmt}' with each "
            "position given by a frame label."
        )


# Camera motions the temporal task names, and how its question words them.
TEMPORAL_MOTIONS = {
    "forward": "moved steadily forward",
    "backward": "moved steadily backward",
    "left": "moved steadily to its left, sideways, without turning",
    "right": "moved steadily to its right, sideways, without turning",
    "turn_left": "turned steadily to the left in place",
    "turn_right": "turned steadily to the right in place",
}
_ORDINALS = ("First", "Second", "Third", "Fourth", "Fifth", "Sixth")
_NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six"}

# Option texts of the rotation task, by clockwise turn in degrees.
_ROTATION_OPTIONS = {
    0: "not rotated",
    90: "rotated 90 degrees clockwise",
    180: "rotated 180 degrees",
    270: "rotated 90 degrees counterclockwise",
}


PROMPT_SETS = {"paper": PaperPrompts()}


def get_prompt_set(name: str) -> PaperPrompts:
    try:
        return PROMPT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown prompt set {name!r}; available: {', '.join(sorted(PROMPT_SETS))}") from None
