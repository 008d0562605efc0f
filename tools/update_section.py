#!/usr/bin/python3
"""update_section.py FILE NAME < TEXT - replaces the block between
'<!-- BEGIN NAME -->' and '<!-- END NAME -->' in FILE with TEXT (appending
the block when FILE lacks it), so each benchmark script owns one section of
docs/PERFORMANCE.md and reruns never duplicate it."""
import os
import sys

path, name = sys.argv[1], sys.argv[2]
body = sys.stdin.read().rstrip("\n")
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
block = f"{begin}\n{body}\n{end}"
text = open(path).read() if os.path.exists(path) else "# Performance\n"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    text = head + block + tail
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
with open(path, "w") as f:
    f.write(text if text.endswith("\n") else text + "\n")
