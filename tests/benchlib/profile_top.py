"""Summarise a `bench_wire.py --profile` stack file (py-spy raw/collapsed format).

    python3 tests/benchlib/profile_top.py DIR/0002-push.txt

Prints where a muse command spent its wall clock: the frames with the most samples of their
own, and the inclusive share of each frame (imports, HTTP waits, hashing, writing files).
"""

from __future__ import annotations

import collections
import sys


def summarize(path: str, top_self: int = 15, top_incl: int = 30) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n_text = line.rstrip("\n").rpartition(" ")
            if not n_text.isdigit():
                continue
            n = int(n_text)
            total += n
            frames = stack.split(";")
            own[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{path}: {total} samples"]
    out.append("-- own time")
    out += [f"{v / total * 100:5.1f}% {k[:140]}" for k, v in own.most_common(top_self)]
    out.append("-- inclusive")
    out += [f"{v / total * 100:5.1f}% {k[:140]}" for k, v in incl.most_common(top_incl)]
    return "\n".join(out)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(summarize(p))
