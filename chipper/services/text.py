"""Text people send, without the control characters that no one types: C0 and C1 controls
(NUL above all, which PostgreSQL refuses in text, ESC, U+0085...), and the Unicode line and
paragraph separators, which break a line where the page and the JSON do not expect one."""

# Every C0 and C1 control (Unicode category Cc) goes; a message keeps newlines and tabs, and
# its other line breaks become newlines (a browser's textarea sends CRLF).
_CONTROLS = {code: None for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))}
_MESSAGE = {**_CONTROLS, ord("\n"): "\n", ord("\t"): "\t", 0x2028: "\n", 0x2029: "\n"}
_MESSAGE[ord("\r")] = None
# A name is one line: its line breaks and tabs become spaces.
_LINE = {**_CONTROLS, ord("\n"): " ", ord("\t"): " ", 0x2028: " ", 0x2029: " "}
_LINE[ord("\r")] = None


def message_text(text: str) -> str:
    return text.translate(_MESSAGE)


def one_line(text: str) -> str:
    return text.translate(_LINE)
