"""The Public Suffix List: the names under which anyone can register (``co.uk``) or get (``github.io``) a name.

A wildcard route over such a name (``*.co.uk``, ``*.readthedocs.io``,
``*.compute.amazonaws.com``) reaches hosts that belong to anyone, so it
widens access as much as ``*.com`` does. Which names those are is data, not
code: the list is shipped with the package (``public_suffix_list.dat``, the
Mozilla Public License 2.0 text whose header it carries), copied from
Debian's ``publicsuffix`` package by ``scripts/refresh-public-suffix-list``.
It is read once, the first time a wildcard is judged.

The matching is the list's own algorithm (https://publicsuffix.org/list/):
the longest rule that matches wins, a ``*`` label matches any one label, an
exception rule (``!www.ck``) wins over every other, and a name no rule
matches is a top-level domain of its own (the implicit ``*`` rule).
Internationalized rules match in both forms, Unicode and ``xn--``.
"""

from __future__ import annotations

import contextlib
import encodings.idna
import functools
import re
from dataclasses import dataclass
from importlib import resources

DATA_FILE = "public_suffix_list.dat"
_PRIVATE_BEGIN = "// ===BEGIN PRIVATE DOMAINS==="
# The last label of a rule: a top-level domain, whether the list names it alone (``uk``), under a wildcard
# (``*.ck``) or only beneath it (``co.za``, ``gov.za``: .za takes no names of its own, and has no rule of one
# label). A rule's line may go on after white space (the list's format); a comment's ``//`` is none.
_TOP_LEVEL_RULE = re.compile(r"^[ \t]*(?:[^\s/][^\s]*\.)?([^.\s/!*]+)(?:[ \t].*)?$", re.MULTILINE)


@dataclass(frozen=True)
class SuffixList:
    """The list's rules, by kind, each in its Unicode and its ``xn--`` form."""

    rules: frozenset[str]  # "co.uk"
    wildcards: frozenset[str]  # "ck" for the rule "*.ck"
    exceptions: frozenset[str]  # "www.ck" for the rule "!www.ck"
    private: frozenset[str]  # the rules (and wildcards' bases) of the list's private section: shared platforms
    parents: frozenset[str]  # every name with a rule strictly beneath it ("amazonaws.com", "uk", "ck")

    def suffix_length(self, labels: list[str]) -> int:
        """How many of ``labels`` (lower case) the public suffix of the name they spell takes."""
        count = len(labels)
        for start in range(count):
            if ".".join(labels[start:]) in self.exceptions:
                return count - start - 1
        for start in range(count):
            if ".".join(labels[start:]) in self.rules or ".".join(labels[start + 1:]) in self.wildcards:
                return count - start
        return 1  # the implicit rule "*": an unlisted top-level domain

    def is_public_suffix(self, name: str) -> bool:
        """True for a name that is itself a public suffix (``com``, ``co.uk``, ``github.io``)."""
        labels = _labels(name)
        return bool(labels) and self.suffix_length(labels) == len(labels)

    def holds_suffixes(self, name: str) -> bool:
        """True for a name with public suffixes beneath it (``amazonaws.com``: ``s3.amazonaws.com`` is one)."""
        return ".".join(_labels(name)) in self.parents

    def registrable_domain(self, name: str) -> str | None:
        """The name one owner registered that ``name`` is under (``www.example.co.uk`` -> ``example.co.uk``).

        None for a public suffix itself, an empty name or one with a leading dot.
        """
        if not name or name.startswith("."):
            return None
        labels = _labels(name)
        if not all(labels):
            return None
        length = self.suffix_length(labels)
        return None if length >= len(labels) else ".".join(labels[-length - 1:])

    def why_shared(self, name: str) -> str | None:
        """What ``name`` is when a wildcard over it reaches hosts of many owners (None: it does not, by this list).

        ``a top-level domain``, ``a public suffix: ...``, ``a shared
        platform's suffix ...``: the words that follow "every name under
        .NAME, " in a warning.
        """
        plain = ".".join(_labels(name))
        if not plain:
            return None
        if self.is_public_suffix(plain):
            if "." not in plain:
                return "a top-level domain"
            if plain in self.private or ".".join(plain.split(".")[1:]) in self.private:
                return ("a shared platform's suffix (the Public Suffix List's private section): anyone can get a "
                        "name there")
            return "a public suffix: anyone can register a name under it"
        if plain in self.parents:
            return "which holds public suffixes (the Public Suffix List): names there belong to others"
        return None


def _labels(name: str) -> list[str]:
    return name.strip().rstrip(".").lower().split(".") if name.strip().rstrip(".") else []


def _forms(name: str) -> set[str]:
    """A rule's name as listed and in its ``xn--`` form (the same when it is ASCII)."""
    forms = {name}
    if not name.isascii():
        with contextlib.suppress(UnicodeError):  # a label IDNA cannot encode is matched as listed only
            forms.add(".".join(label if label.isascii() else encodings.idna.ToASCII(label).decode("ascii")
                               for label in name.split(".")))
    return forms


def parse(text: str) -> SuffixList:
    """The rules of a list in the format of ``public_suffix_list.dat`` (one rule a line, ``//`` comments)."""
    rules: set[str] = set()
    wildcards: set[str] = set()
    exceptions: set[str] = set()
    private: set[str] = set()
    parents: set[str] = set()
    in_private = False
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith(_PRIVATE_BEGIN):
            in_private = True
        if not line or line.startswith("//"):
            continue
        rule = line.split()[0].lower()  # the list's format: a rule ends at the first white space
        if rule.startswith("!"):
            exceptions |= _forms(rule[1:])
            continue
        if rule.startswith("*."):
            base = _forms(rule[2:])
            wildcards |= base
            parents |= base
            names = base
        else:
            names = _forms(rule)
            rules |= names
        if in_private:
            private |= names
        for one in names:
            labels = one.split(".")
            parents |= {".".join(labels[start:]) for start in range(1, len(labels))}
    return SuffixList(frozenset(rules), frozenset(wildcards), frozenset(exceptions), frozenset(private),
                      frozenset(parents))


@functools.cache
def shipped() -> SuffixList:
    """The list shipped with the package, read and parsed once."""
    data = resources.files("bot_bottle.policy").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse(data)


def is_top_level_domain(label: str) -> bool:
    """True for a top-level domain public DNS has (``com``, ``uk``, ``ck``, ``za``, ``onion``), in either form of
    an internationalized one: the last label of any rule the list names, alone (``uk``), under a wildcard
    (``*.ck``) or beneath it only (``co.za``)."""
    plain = label.strip().lower()
    if plain.startswith("xn--"):  # the list writes internationalized names in Unicode
        with contextlib.suppress(UnicodeError):
            plain = encodings.idna.ToUnicode(plain)
    return plain in _top_level_domains()


@functools.cache
def _top_level_domains() -> frozenset[str]:
    # Read apart from ``shipped()``: every host shown is judged against these few hundred names, and parsing
    # the whole list for them cost 30 ms a process (a wildcard's judgement still needs it).
    # (The private section names no top-level domain: every one of its rules is under one of the list's.)
    data = resources.files("bot_bottle.policy").joinpath(DATA_FILE).read_text(encoding="utf-8")
    icann = data.split(_PRIVATE_BEGIN, 1)[0]
    return frozenset(rule.lower() for rule in _TOP_LEVEL_RULE.findall(icann))

