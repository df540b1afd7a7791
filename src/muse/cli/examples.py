"""One example per command, shown by ``muse help COMMAND`` and ``muse COMMAND --help``.

Kept in one table (imported only for help) so that every command has one and a test can
say so, without each command module carrying its own.
"""

from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "init": "muse init song            # a new repository in ./song",
    "status": "muse status -s            # one line per changed file, as git status -s",
    "commit": 'muse commit -m "chorus"   # record the whole working tree',
    "log": "muse log --oneline --graph main..topic",
    "show": "muse show HEAD~1:mix.wav > old-mix.wav",
    "diff": "muse diff --stat main..topic -- stems/",
    "branch": "muse branch -vv            # tips, upstreams, ahead/behind",
    "checkout": "muse checkout topic        # switch (tracks origin/topic if only that exists)",
    "fsck": "muse fsck                  # verify every object and ref",
    "gc": "muse gc                    # pack loose objects and small packs now",
    "config": 'muse config --global user.name "Ada Lovelace"',
    "remote": "muse remote add origin https://hub.example/alice/song",
    "auth": "muse auth login https://hub.example",
    "push": "muse push -u origin main",
    "pull": "muse pull --ff-only",
    "fetch": "muse fetch origin",
    "clone": "muse clone https://hub.example/alice/song",
    "merge": "muse merge --conflict=diff3 topic",
    "resolve": "muse resolve verse.txt     # after fixing its conflict markers",
    "tag": 'muse tag -a v1.0 -m "first release"',
    "reset": "muse reset --hard HEAD@{1} # undo the last reset, merge or pull",
    "revert": "muse revert HEAD",
    "restore": "muse restore --source HEAD~2 mix.wav",
    "stash": "muse stash -u && muse pull && muse stash pop",
    "reflog": "muse reflog -n 5",
    "add": "muse add verse.txt         # marks a fixed conflict resolved",
    "rm": "muse rm -r old-takes/",
    "fast-import": "git fast-export --all | muse fast-import",
}


def epilog(name: str) -> str | None:
    ex = EXAMPLES.get(name)
    return f"example:\n  {ex}" if ex else None
