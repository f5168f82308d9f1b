"""The shell commands that README.md and docs/*.md show in their fenced code blocks, as a
reader would copy them: one entry per command (backslash continuations joined), each with the
file and line it came from, and, in ``console`` blocks, the output printed after a ``$ `` line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELL_BLOCKS = ("bash", "sh", "shell", "console")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class DocCommand:
    file: str  # relative to the repository
    line: int
    text: str  # the command as written, comments after it removed
    output: tuple[str, ...] = field(default=())  # what a console block shows it printing

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a # inside quotes, or glued to a word, stays)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def commands(path: Path, root: Path) -> list[DocCommand]:
    """Every command in ``path``'s shell blocks, in order."""
    text = path.read_text()
    found: list[DocCommand] = []
    for block in _FENCE.finditer(text):
        if block.group(1) not in SHELL_BLOCKS:
            continue
        first_line = text.count("\n", 0, block.start(2)) + 1
        console = block.group(1) == "console"
        pending, start = "", 0
        for offset, raw in enumerate(block.group(2).splitlines()):
            if console and not raw.startswith("$ ") and not pending:
                if found and found[-1].file == str(path.relative_to(root)) and raw.strip():
                    last = found.pop()
                    found.append(DocCommand(last.file, last.line, last.text, (*last.output, raw.rstrip())))
                continue
            line = raw[2:] if console and raw.startswith("$ ") else raw
            line = strip_comment(line)
            if pending:  # a continuation: its indent is layout, not part of the command
                line = line.lstrip()
            if not line.strip() and not pending:
                continue
            if not pending:
                start = first_line + offset
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            found.append(DocCommand(str(path.relative_to(root)), start, (pending + line).strip()))
            pending = ""
    return found


def documented(root: Path) -> list[DocCommand]:
    """The commands of README.md, then of each docs/*.md, in order."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return [command for path in files for command in commands(path, root)]
