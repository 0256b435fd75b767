"""A parser for the subset of SAS/CASL that irc's model.sas uses, to read the program back.

Handles ``%let VAR=value;``, ``/* comments */``, and inside ``proc cas; ... quit;`` the
statements ``loadactionset "set";`` and ``[action] set.name / key=value ...;`` with values:
'single-quoted' strings ('' escapes a quote), "double-quoted" strings (kept raw, e.g.
"&IRC_WEIGHTS_PATH"), integers, floats, true/false, {lists} and {key=value dictionaries};
``action set.name result=VAR / ...;``; a variable set to a constant (``v = {...};``) and used as
a parameter value; any other CASL statement (expressions, ``do ... end;``, ``print``) is kept
as its text, statement by statement, in ``code``.
"""
from __future__ import annotations

import re

TOKEN = re.compile(r"""
    (?P<comment>/\*.*?\*/)
  | (?P<str>'(?:[^']|'')*')
  | (?P<dstr>"[^"]*")
  | (?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_&][\w.&]*)
  | (?P<punct>[{}=,/;])
  | (?P<op>\|\||<=|>=|[-+*()\[\]<>.])
  | (?P<space>\s+)
""", re.S | re.X)


def tokens(text: str):
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise SyntaxError(f"cannot read CASL at {text[pos:pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("comment", "space"):
            continue
        raw = m.group()
        if kind == "str":
            yield ("value", raw[1:-1].replace("''", "'"))
        elif kind == "dstr":
            yield ("value", raw[1:-1])
        elif kind == "num":
            yield ("value", float(raw) if re.search(r"[.eE]", raw) else int(raw))
        elif kind == "name" and raw.lower() in ("true", "false"):
            yield ("value", raw.lower() == "true")
        else:
            yield (kind, raw)


class _Parser:
    def __init__(self, text):
        self.toks = list(tokens(text))
        self.i = 0
        self.variables: dict = {}

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def take(self, kind=None, raw=None):
        tok = self.peek()
        if tok[0] is None:
            raise SyntaxError("unexpected end of the program")
        if (kind and tok[0] != kind) or (raw and str(tok[1]).lower() != raw):
            raise SyntaxError(f"expected {raw or kind}, got {tok}")
        self.i += 1
        return tok[1]

    def value(self):
        if self.peek()[0] == "value":
            return self.take()
        if self.peek()[0] == "name" and self.peek()[1] in self.variables:
            return self.variables[self.take()]
        self.take("punct", "{")
        if self.peek()[0] == "name" and self.peek(1) == ("punct", "="):
            out = self.assignments(until=("punct", "}"))
        else:
            out = []
            while self.peek() != ("punct", "}"):
                out.append(self.value())
                if self.peek() == ("punct", ","):
                    self.take()
        self.take("punct", "}")
        return out

    def statement(self):
        start = self.i
        word = self.take("name")
        if word.lower() == "loadactionset":
            name = self.take("value")
            self.take("punct", ";")
            return ("loadactionset", {"actionSet": name})
        if word.lower() == "action":
            word = self.take("name")
            if self.peek() == ("name", "result"):
                self.take()
                self.take("punct", "=")
                self.take("name")
            self.take("punct", "/")
            params = self.assignments(until=("punct", ";"))
            self.take("punct", ";")
            return (word, params)
        if self.peek() == ("punct", "=") and self.constant_follows():
            self.take()
            self.variables[word] = self.value()
            self.take("punct", ";")
            return ("=", {word: self.variables[word]})
        self.i = start  # any other statement: its tokens up to the ';'
        text = []
        while self.peek() != ("punct", ";"):
            text.append(str(self.take()))
        self.take("punct", ";")
        return ("code", " ".join(text))

    def constant_follows(self) -> bool:
        """After ``name =``: a constant up to the ';' (not an expression)?"""
        save = self.i
        try:
            self.take("punct", "=")
            self.value()
            return self.peek() == ("punct", ";")
        except (SyntaxError, IndexError):
            return False
        finally:
            self.i = save

    def assignments(self, until) -> dict:
        """``name = value`` pairs, commas optional, up to (not taking) the token ``until``."""
        out = {}
        while self.peek() != until:
            key = self.take("name")
            self.take("punct", "=")
            out[key] = self.value()
            if self.peek() == ("punct", ","):
                self.take()
        return out


def parse_casl(text: str) -> dict:
    """{'lets': {VAR: value}, 'actions': [(name, params), ...]} of a model.sas program."""
    lets = dict(re.findall(r"(?im)^\s*%let\s+(\w+)\s*=\s*(.*?)\s*;\s*$", text))
    body = re.sub(r"(?im)^\s*%let\s+.*$", "", text)
    start = re.search(r"(?i)\bproc\s+cas\s*;", body)
    end = re.search(r"(?i)\bquit\s*;", body)
    if not start or not end:
        raise SyntaxError("no `proc cas; ... quit;` block")
    parser = _Parser(body[start.end():end.start()])
    actions, code = [], []
    while parser.peek()[0] is not None:
        kind, what = parser.statement()
        if kind == "code":
            code.append(what)
        elif kind != "=":
            actions.append((kind, what))
    return {"lets": lets, "actions": actions, "code": code, "variables": parser.variables}


def same(a, b) -> bool:
    """Equal with the same types all the way down (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
