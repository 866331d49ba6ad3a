"""Summarize a ``py-spy record --threads -f raw`` file (collapsed stacks) as text tables.

    python bench/profile_summary.py bench/out/profile-single-wall.txt [--top 25]

Per thread: its share of the samples; then, for the busiest threads, the functions with the
most *self* samples (the leaf frame, by function and file) and the project functions
(``hub/``, ``contracts/``) with the most *inclusive* samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_OURS = ("hub/", "contracts/", "adapters/", "transforms/", "security/")


def _func(frame: str) -> tuple[str, str]:
    """(function (file), function (file:line)) of one collapsed frame."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame, frame
    fn, file, line = m.group("fn"), m.group("file"), m.group("line")
    return f"{fn} ({file})", f"{fn} ({file}:{line})" if line else f"{fn} ({file})"


def load(path: Path) -> list[tuple[str, list[str], int]]:
    out = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = raw.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0]
        if thread.startswith(("thread ", "process ")):
            frames = frames[1:]
            # "thread (0x7f..): MainThread" or "thread (1234): MainThread"
            thread = thread.split(":", 1)[1].strip() if ":" in thread else thread
        else:
            thread = "?"
        out.append((thread, frames, int(n)))
    return out


def summarize(path: Path, top: int = 25) -> str:
    stacks = load(path)
    total = sum(n for _, _, n in stacks) or 1
    per_thread: Counter[str] = Counter()
    for t, _, n in stacks:
        per_thread[t] += n
    lines = [
        f"{total} samples in {path.name}",
        "",
        "| thread | samples | share |",
        "|---|---:|---:|",
    ]
    for t, n in per_thread.most_common():
        lines.append(f"| {t} | {n} | {n / total * 100:.1f}% |")
    for thread, tn in per_thread.most_common(3):
        if tn < total * 0.05:
            continue
        self_fn: Counter[str] = Counter()
        self_line: Counter[str] = Counter()
        incl: Counter[str] = Counter()
        for t, frames, n in stacks:
            if t != thread or not frames:
                continue
            fn, fl = _func(frames[-1])
            self_fn[fn] += n
            self_line[fl] += n
            seen = set()
            for fr in frames:
                f, _ = _func(fr)
                if f not in seen:
                    seen.add(f)
                    incl[f] += n
        lines += ["", f"**{thread}** ({tn} samples): self time by function", ""]
        lines += ["| function | self | of thread |", "|---|---:|---:|"]
        for f, n in self_fn.most_common(top):
            lines.append(f"| `{f}` | {n} | {n / tn * 100:.1f}% |")
        lines += ["", f"**{thread}**: self time by line (top {min(top, 15)})", ""]
        lines += ["| line | self | of thread |", "|---|---:|---:|"]
        for f, n in self_line.most_common(min(top, 15)):
            lines.append(f"| `{f}` | {n} | {n / tn * 100:.1f}% |")
        ours = [(f, n) for f, n in incl.most_common() if any(o in f for o in _OURS)]
        if ours:
            lines += ["", f"**{thread}**: project functions, inclusive", ""]
            lines += ["| function | inclusive | of thread |", "|---|---:|---:|"]
            for f, n in ours[:top]:
                lines.append(f"| `{f}` | {n} | {n / tn * 100:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    print(summarize(args.path, args.top))


if __name__ == "__main__":
    main()
