"""Environment variables a function reads, found in its Rust sources (shared/src and
functions/<crate>/src), for the env-var test in test_workspace.py.

A light item-level call graph, no Rust parser: the sources are rustfmt-formatted, so top-level
items start at column 0 and methods of an `impl` at column 4. From every item of the crate's
main.rs, it follows `Type::fn(..)`, `Self::fn(..)` and free `fn(..)` calls (not `.method()`
calls) and collects the names read with `helper(env, "NAME", ..)` (required, parse_or,
identifier, ...), `env.var("NAME")` and `std::env::var("NAME")`. Test modules are left out.
Over-approximation (a name collision) can only add names, so the test may ask for a variable
to be documented but never misses one that start-up code reads."""

from __future__ import annotations

import re
from pathlib import Path

ENV_READ = re.compile(
    r'\b[a-z_][a-z0-9_]*(?:::<[^>]*>)?\(\s*&?\s*env\s*,\s*"([A-Z][A-Z0-9_]*)"'
    r'|\benv\s*\.\s*var\(\s*"([A-Z][A-Z0-9_]*)"'
    r'|\bstd::env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]*)"'
)
TYPE_CALL = re.compile(r"\b(Self|[A-Z][A-Za-z0-9_]*)::([a-z_][a-z0-9_]*)\s*(?:::<[^>]*>)?\(")
FREE_CALL = re.compile(r"(?<![.\w])([a-z_][a-z0-9_]*)\s*(?:::<[^>]*>)?\(")
ITEM = re.compile(
    r"^(?P<indent> {0,4})(?:pub(?:\([^)]*\))? )?(?:(?:async|const|unsafe) )*"
    r"(?:fn (?P<fn>[a-z_][a-z0-9_]*)|impl(?:<[^>]*>)? (?:[\w:<>, ]+ for )?(?P<impl>[A-Z]\w*))",
    re.M,
)
TEST_MOD = re.compile(r"^#\[cfg\(test\)\]\s*\n\s*(?:pub )?mod \w+", re.M)


def strip_line_comments(text: str) -> str:
    """Drops `// ...` outside string literals (so "https://..." stays)."""
    out = []
    for line in text.splitlines():
        in_str, i, cut = False, 0, None
        while i < len(line):
            c = line[i]
            if c == "\\" and in_str:
                i += 2
                continue
            if c == '"':
                in_str = not in_str
            elif not in_str and line.startswith("//", i):
                cut = i
                break
            i += 1
        out.append(line if cut is None else line[:cut])
    return "\n".join(out)


def items(text: str):
    """(key, impl type or None, body) of every top-level fn ("name") and method ("Type::name")."""
    m = TEST_MOD.search(text)
    if m:
        text = text[: m.start()]
    text = strip_line_comments(text)
    marks = list(ITEM.finditer(text))
    impl = None
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.start():end]
        if m.group("impl") and m.group("indent") == "":
            impl = m.group("impl")
        elif m.group("fn"):
            if m.group("indent") == "":
                impl = None
                yield m.group("fn"), None, body
            else:
                yield (f"{impl}::{m.group('fn')}" if impl else m.group("fn")), impl, body


def reads_in(body: str) -> set[str]:
    return {a or b or c for a, b, c in ENV_READ.findall(body)}


def graph(files) -> dict[str, dict]:
    nodes: dict[str, dict] = {}
    for path in files:
        for key, impl, body in items(Path(path).read_text()):
            calls = {f"{impl if t == 'Self' else t}::{f}" for t, f in TYPE_CALL.findall(body)}
            calls |= set(FREE_CALL.findall(body))
            node = nodes.setdefault(key, {"reads": set(), "calls": set()})
            node["reads"] |= reads_in(body)
            node["calls"] |= calls
    return nodes


def crate_sources(repo: Path, crate_dir: Path) -> list[Path]:
    return sorted((repo / "shared" / "src").rglob("*.rs")) + sorted((crate_dir / "src").rglob("*.rs"))


def env_vars_read(repo: Path, crate_dir: Path) -> tuple[set[str], set[str]]:
    """(names read, items reached) from the items of functions/<crate>/src/main.rs."""
    nodes = graph(crate_sources(repo, crate_dir))
    roots = [key for key, _, _ in items((crate_dir / "src" / "main.rs").read_text())]
    seen: set[str] = set()
    names: set[str] = set()
    todo = list(roots)
    while todo:
        key = todo.pop()
        if key in seen or key not in nodes:
            continue
        seen.add(key)
        names |= nodes[key]["reads"]
        todo.extend(nodes[key]["calls"])
    return names, seen


def all_env_reads(files) -> set[str]:
    """Every name read anywhere in these files (test modules excluded)."""
    return {n for path in files for _, _, body in items(Path(path).read_text()) for n in reads_in(body)}
