"""Regular expressions over a model's alphabet, compiled to a `Dfa` (full match).

The supported syntax is the regular part of Python's: literals, escapes (`\\.`), classes
(`[a-z]`, `[^aeiou]`), `.` (any letter of the alphabet), `?`, `*`, `+`, `{m}`, `{m,}`, `{m,n}`
(a lazy `?` after a quantifier is accepted: it changes no language), `|`, groups `( )`, `(?: )`
and `(?P<name> )`, and `^`/`$` at the very ends (every match is a full match anyway).
Backreferences, look-arounds, flags and anchors elsewhere are refused with a `RegexError`
saying so: they are not regular, or mean nothing for a full match.

Parsing gives a small AST; Thompson's construction gives an NFA whose edges carry sets of
character ids; the subset construction gives the `Dfa`.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.engine.constraints.automaton import DEAD, Dfa, from_table, minimise

MAX_REPEAT = 64  # the largest bound a {m,n} may name: the automaton grows with it
MAX_NFA_STATES = 4096  # beyond this a pattern is refused as too large
MAX_DFA_STATES = 2048


class RegexError(ValueError):
    """A pattern outside the supported syntax, or malformed; the message says where and why."""


# The AST: a node is a tuple ("set", frozenset ids) | ("cat", [nodes]) | ("alt", [nodes])
#   | ("rep", node, min, max or None)
Node = tuple


@dataclass
class _Parser:
    pattern: str
    index: dict[str, int]  # character -> id (the boundary excluded)
    lowercase: bool
    pos: int = 0

    def error(self, message: str) -> RegexError:
        return RegexError(f"regex {self.pattern!r} at position {self.pos}: {message}")

    def peek(self) -> str | None:
        return self.pattern[self.pos] if self.pos < len(self.pattern) else None

    def take(self) -> str:
        c = self.pattern[self.pos]
        self.pos += 1
        return c

    def parse(self) -> Node:
        if self.peek() == "^":
            self.pos += 1
        node = self.alternation()
        if self.peek() == "$" and self.pos == len(self.pattern) - 1:
            self.pos += 1
        if self.pos != len(self.pattern):
            c = self.peek()
            if c == ")":
                raise self.error("unbalanced ')'")
            raise self.error(f"unexpected {c!r} ('^' and '$' are allowed only at the ends)")
        return node

    def alternation(self) -> Node:
        options = [self.concatenation()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.concatenation())
        return options[0] if len(options) == 1 else ("alt", options)

    def concatenation(self) -> Node:
        items: list[Node] = []
        while self.peek() is not None and self.peek() not in "|)":
            if self.peek() == "$" and self.pos == len(self.pattern) - 1:
                break
            items.append(self.repetition())
        return ("cat", items)

    def repetition(self) -> Node:
        node = self.atom()
        c = self.peek()
        if c is None or c not in "?*+{":
            return node
        if c == "{" and not self._is_bound():
            return node
        self.pos += 1
        if c == "?":
            lo, hi = 0, 1
        elif c == "*":
            lo, hi = 0, None
        elif c == "+":
            lo, hi = 1, None
        else:
            lo, hi = self.bound()
        if self.peek() == "?":
            self.pos += 1  # lazy: the same language
        if self.peek() is not None and self.peek() in "*+?{" and (self.peek() != "{" or self._is_bound()):
            raise self.error("multiple repeat")
        return ("rep", node, lo, hi)

    def _is_bound(self) -> bool:
        end = self.pattern.find("}", self.pos)
        body = self.pattern[self.pos + 1 : end] if end > 0 else ""
        parts = body.split(",")
        return (
            end > 0 and len(parts) <= 2 and parts[0].isdigit() and all(p == "" or p.isdigit() for p in parts)
        )

    def bound(self) -> tuple[int, int | None]:
        end = self.pattern.index("}", self.pos)
        parts = self.pattern[self.pos : end].split(",")
        self.pos = end + 1
        lo = int(parts[0])
        hi = lo if len(parts) == 1 else (int(parts[1]) if parts[1] else None)
        if hi is not None and hi < lo:
            raise self.error(f"bad repeat {{{lo},{hi}}}: the maximum is below the minimum")
        if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
            raise self.error(f"repeat bounds above {MAX_REPEAT} are not supported")
        return lo, hi

    def atom(self) -> Node:
        c = self.peek()
        if c == "(":
            return self.group()
        if c == "[":
            return ("set", self.char_class())
        self.pos += 1
        if c == ".":
            return ("set", frozenset(self.index.values()))
        if c == "\\":
            return ("set", self.escape(in_class=False))
        if c in "*+?{":
            if c == "{" and not self._is_bound():
                return ("set", self.literal(c))
            self.pos -= 1
            raise self.error("nothing to repeat")
        if c in "^$":
            self.pos -= 1
            raise self.error(f"{c!r} is allowed only at the ends of the pattern")
        return ("set", self.literal(c))

    def group(self) -> Node:
        self.pos += 1
        if self.pattern.startswith("?", self.pos):
            rest = self.pattern[self.pos :]
            if rest.startswith("?:"):
                self.pos += 2
            elif rest.startswith("?P<"):
                end = self.pattern.find(">", self.pos)
                if end < 0:
                    raise self.error("unterminated group name")
                self.pos = end + 1
            elif rest[:2] in ("?=", "?!") or rest[:3] in ("?<=", "?<!"):
                raise self.error("look-arounds are not supported (not a regular language over names)")
            elif rest.startswith("?P="):
                raise self.error("backreferences are not supported")
            else:
                raise self.error("flags and other (?...) extensions are not supported")
        node = self.alternation()
        if self.peek() != ")":
            raise self.error("missing ')'")
        self.pos += 1
        return node

    def literal(self, c: str) -> frozenset[int]:
        c = c.lower() if self.lowercase else c
        if c not in self.index:
            self.pos -= 1
            raise self.error(f"{c!r} is not in the model's alphabet")
        return frozenset([self.index[c]])

    def escape(self, in_class: bool) -> frozenset[int]:
        if self.peek() is None:
            raise self.error("a pattern cannot end with '\\'")
        c = self.take()
        if c.isdigit():
            self.pos -= 2
            raise self.error("backreferences are not supported")
        if c in "wW":
            letters = frozenset(i for ch, i in self.index.items() if ch.isalnum() or ch == "_")
            return letters if c == "w" else frozenset(self.index.values()) - letters
        if c in "dD":
            digits = frozenset(i for ch, i in self.index.items() if ch.isdigit())
            return digits if c == "d" else frozenset(self.index.values()) - digits
        if c in "sS":
            spaces = frozenset(i for ch, i in self.index.items() if ch.isspace())
            return spaces if c == "s" else frozenset(self.index.values()) - spaces
        if c.isalnum():
            self.pos -= 2
            raise self.error(f"the escape '\\{c}' is not supported")
        return self.literal_or_empty(c) if in_class else self.literal(c)

    def literal_or_empty(self, c: str) -> frozenset[int]:
        c = c.lower() if self.lowercase else c
        return frozenset([self.index[c]]) if c in self.index else frozenset()

    def char_class(self) -> frozenset[int]:
        self.pos += 1
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        members: set[int] = set()
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise self.error("unterminated character class")
            if c == "]" and not first:
                self.pos += 1
                break
            first = False
            self.pos += 1
            if c == "\\":
                members |= self.escape(in_class=True)
                continue
            if self.peek() == "-" and self.pos + 1 < len(self.pattern) and self.pattern[self.pos + 1] != "]":
                self.pos += 1
                end = self.take()
                if end == "\\":
                    end = self.take()
                if ord(end) < ord(c):
                    raise self.error(f"bad range {c}-{end}")
                for code in range(ord(c), ord(end) + 1):
                    members |= self.literal_or_empty(chr(code))
                continue
            members |= self.literal_or_empty(c)
        every = frozenset(self.index.values())
        return every - members if negate else frozenset(members)


class _Nfa:
    """Thompson's construction: edges (from, ids or None for epsilon, to)."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[frozenset[int] | None, int]]] = []

    def new(self) -> int:
        if len(self.edges) >= MAX_NFA_STATES:
            raise RegexError(f"the pattern is too large (over {MAX_NFA_STATES} automaton states)")
        self.edges.append([])
        return len(self.edges) - 1

    def build(self, node: Node) -> tuple[int, int]:
        """(entry, exit) states of a fragment accepting node's language."""
        kind = node[0]
        if kind == "set":
            a, b = self.new(), self.new()
            self.edges[a].append((node[1], b))
            return a, b
        if kind == "cat":
            a = b = self.new()
            for item in node[1]:
                x, y = self.build(item)
                self.edges[b].append((None, x))
                b = y
            return a, b
        if kind == "alt":
            a, b = self.new(), self.new()
            for item in node[1]:
                x, y = self.build(item)
                self.edges[a].append((None, x))
                self.edges[y].append((None, b))
            return a, b
        _, inner, lo, hi = node
        a = b = self.new()
        for _ in range(lo):
            x, y = self.build(inner)
            self.edges[b].append((None, x))
            b = y
        if hi is None:
            x, y = self.build(inner)
            self.edges[b].append((None, x))
            self.edges[y].append((None, x))
            end = self.new()
            self.edges[b].append((None, end))
            self.edges[y].append((None, end))
            return a, end
        end = self.new()
        self.edges[b].append((None, end))
        for _ in range(hi - lo):
            x, y = self.build(inner)
            self.edges[b].append((None, x))
            self.edges[y].append((None, end))
            b = y
        return a, end

    def closure(self, states: set[int]) -> frozenset[int]:
        stack, seen = list(states), set(states)
        while stack:
            s = stack.pop()
            for ids, t in self.edges[s]:
                if ids is None and t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)


def compile_regex(pattern: str, alphabet: str, lowercase: bool) -> Dfa:
    """The minimal Dfa of the names `pattern` fully matches, over `alphabet` ('.' at id 0)."""
    index = {c: i for i, c in enumerate(alphabet) if i > 0}
    tree = _Parser(pattern, index, lowercase).parse()
    nfa = _Nfa()
    entry, exit_ = nfa.build(tree)
    vocab_size = len(alphabet)
    start = nfa.closure({entry})
    subsets = {frozenset(): DEAD, start: 1}
    order = [frozenset(), start]
    rows: list[list[int]] = [[DEAD] * vocab_size]
    i = 1
    while i < len(order):
        current = order[i]
        row = [DEAD] * vocab_size
        for j in range(1, vocab_size):
            moved = {t for s in current for ids, t in nfa.edges[s] if ids is not None and j in ids}
            target = nfa.closure(moved) if moved else frozenset()
            if target not in subsets:
                if len(order) >= MAX_DFA_STATES:
                    raise RegexError(
                        f"regex {pattern!r} is too large (over {MAX_DFA_STATES} automaton states)"
                    )
                subsets[target] = len(order)
                order.append(target)
            row[j] = subsets[target]
        rows.append(row)
        i += 1
    accepting = [exit_ in subset for subset in order]
    return minimise(from_table(rows, accepting, 1))
