"""Filters for HTCondor configuration: check a ClassAd expression on the controller, before anything is written.

``htcondor_classad_expr`` parses an expression with the grammar of HTCondor's (new) ClassAd language, as
``classad_eval`` of HTCondor 23.9 accepts it on the right-hand side of an assignment: literals (integers without
leading zeros, reals, strings with backslash escapes, true/false/undefined/error), attribute references (plain,
``'quoted'``, scoped ``MY.``/``TARGET.`` or any ``a.b.c``, absolute ``.a``), function calls on a name, lists
``{...}``, records ``[a = 1; b = 2]``, subscripts ``x[i]``, unary ``- + ! ~``, the binary operators, ``is``/``isnt``
and the conditionals ``c ? a : b`` and ``a ?: b``. tests/unit/data/selfcheck/classad-parse.yml records what
classad_eval 23.9.6 said about each test expression. HTCondor configuration macros (``$(NAME)``) are refused: they
are expanded only when HTCondor reads the file, so they cannot be checked here.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|/\*.*?\*/)
  | (?P<real>(?:[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)(?![A-Za-z0-9_.]))
  | (?P<int>(?:0|[1-9][0-9]*)(?![A-Za-z0-9_.]))
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<qname>'(?:[^'\\\n]|\\.)+')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>=\?=|=!=|>>>|\?:|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%<>!~&|^?:.,;=()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)
_BINARY = {"||", "&&", "|", "^", "&", "==", "!=", "=?=", "=!=", "<", "<=", ">", ">=", "<<", ">>", ">>>"}
_BINARY |= {"+", "-", "*", "/", "%", "is", "isnt"}
_UNARY = {"-", "+", "!", "~"}
_LITERAL_WORDS = {"true", "false", "undefined", "error"}


class _ParseError(Exception):
    def __init__(self, message, pos):
        super().__init__(message)
        self.pos = pos


def _tokens(text):
    """(kind, value, position) for each token of ``text``; raises _ParseError on a character that starts none."""
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            char = text[pos]
            if char == '"':
                raise _ParseError("unterminated string", pos)
            if char.isdigit():
                raise _ParseError(f"malformed number starting {text[pos : pos + 8]!r}", pos)
            raise _ParseError(f"unexpected character {char!r}", pos)
        kind = match.lastgroup
        value = match.group()
        if kind != "space":
            if kind == "name" and value.lower() in ("is", "isnt"):
                kind, value = "op", value.lower()
            out.append((kind, value, pos))
        pos = match.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    """Recursive descent over the tokens; only checks the form (precedence does not change validity)."""

    def __init__(self, text):
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, offset=0):
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self):
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, *values):
        kind, value, _ = self.peek()
        return kind == "op" and value in values

    def expect(self, value, what):
        kind, got, pos = self.peek()
        if kind != "op" or got != value:
            raise _ParseError(f"expected {value!r} {what}, found {got or 'the end'!r}", pos)
        self.take()

    def parse(self):
        self.expression()
        kind, value, pos = self.peek()
        if kind != "end":
            raise _ParseError(f"unexpected {value!r} after a complete expression", pos)

    def expression(self):
        self.binary()
        if self.at("?:"):
            self.take()
            self.expression()
        elif self.at("?"):
            self.take()
            self.expression()
            self.expect(":", "in a conditional c ? a : b")
            self.expression()

    def binary(self):
        self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in _BINARY:
            self.take()
            self.unary()

    def unary(self):
        if self.at(*_UNARY):
            self.take()
            self.unary()
            return
        self.postfix()

    def postfix(self):
        self.primary()
        while True:
            if self.at("["):
                self.take()
                self.expression()
                self.expect("]", "to close a subscript")
            elif self.at("."):
                self.take()
                self.reference()
            else:
                return

    def reference(self):
        """After a '.': an attribute name, or another '.' and a reference (``a..b`` parses in classad_eval)."""
        kind, value, pos = self.peek()
        if kind in ("name", "qname"):
            self.take()
        elif self.at("."):
            self.take()
            self.reference()
        else:
            raise _ParseError(f"expected an attribute name after '.', found {value or 'the end'!r}", pos)

    def primary(self):
        kind, value, pos = self.peek()
        if kind in ("int", "real", "qname"):
            self.take()
        elif kind == "string":
            while self.peek()[0] == "string":  # adjacent string literals are one string
                self.take()
        elif kind == "name":
            self.take()
            if value.lower() not in _LITERAL_WORDS and self.at("("):
                self.take()
                self.items(")", "in the argument list of " + value)
        elif self.at("("):
            self.take()
            self.expression()
            self.expect(")", "to close '('")
        elif self.at("{"):
            self.take()
            self.items("}", "in a list")
        elif self.at("["):
            self.take()
            self.record()
        elif self.at("."):
            self.take()
            self.reference()
        else:
            raise _ParseError(f"expected a value, found {value or 'the end'!r}", pos)

    def items(self, close, where):
        if self.at(close):
            self.take()
            return
        while True:
            self.expression()
            if self.at(","):
                self.take()
                continue
            self.expect(close, where)
            return

    def record(self):
        if self.at("]"):
            self.take()
            return
        while True:
            kind, value, pos = self.peek()
            if kind not in ("name", "qname"):
                raise _ParseError(f"expected an attribute name in a record, found {value or 'the end'!r}", pos)
            self.take()
            self.expect("=", "after an attribute name in a record")
            self.expression()
            if not self.at(";"):
                self.expect("]", "to close a record (or ';' between attributes)")
                return
            while self.at(";"):
                self.take()
            if self.at("]"):
                self.take()
                return


def classad_problem(text):
    """None when ``text`` is one ClassAd expression, else what is wrong and where (for error messages)."""
    if not isinstance(text, str) or not text.strip():
        return "it is empty"
    if "\n" in text or "\r" in text:
        return "it spans several lines; a configuration value is one line"
    if "$(" in text:
        return "it uses a configuration macro $(...), which is expanded only when HTCondor reads the file; write it out"
    try:
        _Parser(text).parse()
    except _ParseError as exc:
        return f"{exc} at column {exc.pos + 1}"
    return None


def htcondor_classad_expr(value, name="the expression"):
    """``value`` (stripped) when it parses as one ClassAd expression; else AnsibleFilterError naming ``name``."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    problem = classad_problem(value)
    if problem:
        raise AnsibleFilterError(
            f"htcondor_classad_expr: {name} = {value!r} is not a ClassAd expression: {problem}. Expected one "
            'expression such as ifThenElse(isUndefined(TARGET.SingularityImage), "/cvmfs/...", '
            "TARGET.SingularityImage)"
        )
    return value.strip()


def htcondor_classad_string(value, name="the value"):
    """``value`` as a ClassAd string literal in a configuration file: quotes and backslashes escaped, one line."""
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise AnsibleFilterError(f"htcondor_classad_string: {name} must be a one-line string, got {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FilterModule:
    def filters(self):
        return {
            "htcondor_classad_expr": htcondor_classad_expr,
            "htcondor_classad_string": htcondor_classad_string,
        }
