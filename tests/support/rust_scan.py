"""Just enough Rust lexing to find AWS SDK calls in failoverd's sources (tests/support/test_iam_policy.py).

Not a parser: it blanks comments and literal contents (so `//` in a URL or a brace in a string
cannot confuse it), drops items whose `#[cfg(...)]` is off in the shipped binary, walks the module
tree from the crate roots, and finds `<client>.<operation>()` calls on names bound to an SDK
client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_IDENT = re.compile(r"[A-Za-z0-9_]")
_CHAR_LITERAL = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^\\'\n])'")
_RAW_STRING = re.compile(r'(?:b|c)?r(#*)"')


def _blank(text: str) -> str:
    """`text` with every character but newlines replaced by a space (line numbers survive)."""
    return re.sub(r"[^\n]", " ", text)


def strip_rust(text: str, keep_strings: bool = False) -> str:
    """`text` with comments blanked and, unless `keep_strings`, the contents of string and char
    literals blanked too (their quotes stay). Same length and line structure as `text`."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        prev_ident = i > 0 and bool(_IDENT.match(text[i - 1]))
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(_blank(text[i:j]))
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 0, i
            while j < n:
                if text.startswith("/*", j):
                    depth += 1
                    j += 2
                elif text.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            out.append(_blank(text[i:j]))
            i = j
            continue
        raw = None if prev_ident else _RAW_STRING.match(text, i)
        if raw:
            close = '"' + raw.group(1)
            j = text.find(close, raw.end())
            j = n if j < 0 else j + len(close)
            body = text[raw.end():j - len(close)]
            out.append(text[i:raw.end()] + (body if keep_strings else _blank(body)) + text[j - len(close):j])
            i = j
            continue
        if c == '"' or (c in "bc" and text.startswith('"', i + 1) and not prev_ident):
            start = i + (0 if c == '"' else 1)
            j = start + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            body = text[start + 1:j]
            out.append(text[i:start + 1] + (body if keep_strings else _blank(body)) + '"')
            i = j + 1
            continue
        if c == "'":
            m = _CHAR_LITERAL.match(text, i)
            if m:  # a char literal; otherwise a lifetime or label, kept as is
                out.append("'" + _blank(m.group(0)[1:-1]) + "'")
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _matching(code: str, open_at: int) -> int:
    """Index just past the bracket matching the one at `open_at` (code already stripped)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[code[open_at]]]
    j = open_at + 1
    while j < len(code) and stack:
        ch = code[j]
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if ch != stack[-1]:
                raise ValueError(f"unbalanced {ch!r} at offset {j}")
            stack.pop()
        j += 1
    if stack:
        raise ValueError(f"unclosed {code[open_at]!r} at offset {open_at}")
    return j


# -- cfg evaluation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cfg:
    """What is known about the shipped binary's configuration: a Linux release build with the
    given features. Anything else is unknown, and unknown code is kept (counted)."""

    features: frozenset[str] = frozenset()
    true_names: frozenset[str] = frozenset({"unix"})
    false_names: frozenset[str] = frozenset({"test", "windows", "debug_assertions", "miri", "doc", "doctest"})
    values: dict[str, str] = field(default_factory=lambda: {
        "target_os": "linux", "target_family": "unix"})

    def eval(self, expr: str) -> bool | None:
        """True, False, or None when unknown."""
        expr = expr.strip()
        m = re.fullmatch(r"(any|all|not)\s*\((.*)\)", expr, re.S)
        if m:
            args = [self.eval(a) for a in _split_args(m.group(2))]
            if m.group(1) == "not":
                return None if args[0] is None else not args[0]
            if m.group(1) == "any":
                return True if True in args else (None if None in args else False)
            return False if False in args else (None if None in args else True)
        m = re.fullmatch(r'(\w+)\s*=\s*"([^"]*)"', expr)
        if m:
            key, value = m.groups()
            if key == "feature":
                return value in self.features
            if key in self.values:
                return self.values[key] == value
            return None
        if expr in self.true_names:
            return True
        if expr in self.false_names:
            return False
        return None


def _split_args(text: str) -> list[str]:
    args, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            args.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        args.append("".join(cur))
    return args


_CFG_ATTR = re.compile(r"#(!?)\[\s*cfg\s*\(")


def disabled_spans(code: str, raw: str, cfg: Cfg) -> list[tuple[int, int]]:
    """The (start, end) spans of `code` (stripped) that are items or statements under a
    `#[cfg(...)]` that is off in the shipped binary, attribute included.

    `raw` is the same text with string contents kept: cfg predicates compare strings
    (`feature = "testing"`)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        m = _CFG_ATTR.search(code, pos)
        if not m:
            return spans
        paren = m.end() - 1
        predicate = raw[paren + 1:_matching(code, paren) - 1]
        attr_end = _matching(code, m.start() + 1 + len(m.group(1)))
        if cfg.eval(predicate) is not False:
            pos = attr_end
            continue
        if m.group(1):  # `#![cfg(...)]` off: the whole module is compiled out
            return [(0, len(code))]
        end = _item_end(code, attr_end)
        spans.append((m.start(), end))
        pos = end


def blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in spans:
        text = text[:start] + _blank(text[start:end]) + text[end:]
    return text


def _item_end(code: str, start: int) -> int:
    """End of the item (or statement) beginning at `start`: its outer attributes, then up to a
    `;` or a closing brace at depth 0 (`use a::{b};` ends at the `;` after the brace)."""
    j = start
    while True:
        m = re.compile(r"\s*#\s*\[").match(code, j)
        if not m:
            break
        j = _matching(code, m.end() - 1)
    while j < len(code):
        ch = code[j]
        if ch == ";":
            return j + 1
        if ch in "([":
            j = _matching(code, j)
            continue
        if ch == "{":
            j = _matching(code, j)
            rest = re.compile(r"\s*;").match(code, j)
            return rest.end() if rest else j
        j += 1
    return j


# -- the module tree -----------------------------------------------------------------------------

_MOD = re.compile(r"\bmod\s+(?:r#)?([A-Za-z_]\w*)\s*([;{])")


@dataclass
class Module:
    path: Path
    raw: str       # the file as written
    code: str      # comments and literals blanked, disabled items removed
    strings: str   # comments blanked, literals kept, disabled items removed


def load_module(path: Path, cfg: Cfg) -> Module:
    raw = path.read_text()
    code = strip_rust(raw)
    strings = strip_rust(raw, keep_strings=True)
    spans = disabled_spans(code, strings, cfg)
    return Module(path, raw, blank_spans(code, spans), blank_spans(strings, spans))


def module_files(roots: list[Path], cfg: Cfg) -> list[Module]:
    """Every module file reachable from the crate roots through live `mod name;` declarations
    (`#[path]` is refused: nothing in failoverd uses it, and guessing would hide files)."""
    seen: dict[Path, Module] = {}
    todo = [r.resolve() for r in roots]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        module = load_module(path, cfg)
        seen[path] = module
        if re.search(r"#\s*\[\s*path\s*=", module.code):
            raise ValueError(f"{path}: #[path] module attributes are not supported by this scan")
        is_dir_owner = path.name in ("mod.rs", "lib.rs", "main.rs")
        base = path.parent if is_dir_owner else path.parent / path.stem
        inline: list[tuple[int, int, str]] = []  # (start, end, name) of inline `mod x { ... }`
        for m in _MOD.finditer(module.code):
            if m.group(2) == "{":
                inline.append((m.end() - 1, _matching(module.code, m.end() - 1), m.group(1)))
        for m in _MOD.finditer(module.code):
            if m.group(2) != ";":
                continue
            nesting = [name for (s, e, name) in sorted(inline) if s < m.start() < e]
            parent = base.joinpath(*nesting)
            candidates = [parent / f"{m.group(1)}.rs", parent / m.group(1) / "mod.rs"]
            found = [c for c in candidates if c.exists()]
            if not found:
                raise FileNotFoundError(f"{path}: mod {m.group(1)}; has no file ({candidates[0]})")
            todo.append(found[0].resolve())
    return sorted(seen.values(), key=lambda m: m.path)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# -- SDK clients and their calls -----------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    crate: str        # the crate's Rust name, e.g. aws_sdk_rds
    operation: str    # snake_case, e.g. describe_db_clusters
    path: Path
    line: int


def client_bindings(code: str, crate: str) -> set[str]:
    """Names bound to a `crate::Client` in this module: fields, parameters and typed lets
    (`name: crate::Client`, `&crate::Client`, `Arc<crate::Client>`), constructor lets
    (`let name = crate::Client::from_conf(..)`), through `use crate as alias` and
    `use crate::Client [as Alias]` too."""
    crate_names = {crate} | set(re.findall(rf"\buse\s+(?:::)?{crate}\s+as\s+(\w+)\s*;", code))
    types = {rf"(?:::)?{re.escape(c)}\s*::\s*Client\b" for c in crate_names}
    for c in crate_names:
        for m in re.finditer(rf"\buse\s+(?:::)?{re.escape(c)}\s*::\s*(\{{[^;]*\}}|[^;]*);", code):
            for alias in re.finditer(r"\bClient\b(?:\s+as\s+(\w+))?", m.group(1)):
                types.add(rf"\b{alias.group(1) or 'Client'}\b")
    names: set[str] = set()
    for t in types:
        ref = r"(?:&\s*(?:'\w+\s+)?(?:mut\s+)?)?"
        wrapped = rf"(?:(?:(?:std\s*::\s*)?sync\s*::\s*)?Arc\s*<\s*)?"
        names.update(re.findall(rf"\b(\w+)\s*:\s*{ref}{wrapped}{t}", code))
        names.update(re.findall(rf"\blet\s+(?:mut\s+)?(\w+)\s*=\s*{t}\s*::", code))
    return names - {"self", "Self", "crate", "super"}


def sdk_calls(modules: list[Module], operations: dict[str, set[str]],
              not_sdk: dict[tuple[str, str], str], root: Path) -> tuple[set[Call], list[str]]:
    """The SDK operations called on clients, and the calls that look like one (an operation
    name of a crate the module uses, called without arguments) but are not on a known client.

    `not_sdk` maps (module path relative to `root`, method) to the reason that method, in that
    module, is not an SDK call."""
    calls: set[Call] = set()
    unattributed: list[str] = []
    for module in modules:
        rel = module.path.relative_to(root).as_posix()
        for crate, ops in operations.items():
            if not re.search(rf"\b{crate}\b", module.code):
                continue
            attributed: set[int] = set()
            for name in client_bindings(module.code, crate):
                for m in re.finditer(rf"\b{re.escape(name)}\s*\.\s*([a-z_][a-z0-9_]*)\s*\(\s*\)", module.code):
                    if m.group(1) in ops:
                        calls.add(Call(crate, m.group(1), module.path, line_of(module.code, m.start(1))))
                        attributed.add(m.start(1))
            for m in re.finditer(r"\.\s*([a-z_][a-z0-9_]*)\s*\(\s*\)", module.code):
                op = m.group(1)
                if op in ops and m.start(1) not in attributed and (rel, op) not in not_sdk:
                    unattributed.append(
                        f"{rel}:{line_of(module.code, m.start(1))}: .{op}() is an operation of {crate} "
                        "but its receiver is not a known client binding")
    return calls, unattributed
