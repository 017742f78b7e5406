"""A routes file that reaches a host a standing rejection rejects, spelt so that no ``[rejected]`` caution named it.

A rule decides ``egress-allow`` proposals only; a routes file (``egress-block``) naming a rejected host is shown
with a ``[rejected]`` caution and asked about twice (review 68). The caution compared each host the file names as
written: a hostile agent's file that spelt crates.io (rejected for web-1) as the proxy's reader and the client
read it but not as written went through as any file does: a lone ``"*"`` (every host: it names none of its own),
``"\\uff43rates.io"`` (full-width c), ``"crates\\u3002io"`` (an ideographic full stop), ``"cra\\u00adtes.io"`` (a
soft hyphen IDNA drops), a JSON surrogate pair spelling a mathematical c (each read as crates.io by a client that
applies IDNA), and ``::ffff:a9fe:a9fe`` (the IPv4-mapped IPv6 address of 169.254.169.254, rejected too; NAT64's
``64:ff9b::a9fe:a9fe`` and 6to4's ``2002:a9fe:a9fe::1`` carry it as well, as ``policy.reach`` reads them), and
``!!binary Y3JhdGVzLmlv`` (a YAML binary scalar: base64 of crates.io, which Go's yaml.v3 reads into a string
field as crates.io; ``policy.host_text.binary_hosts``). Now each
host is also compared as a client asks for it (``policy.hosts.asked_as``), and a lone ``*`` against every
rejection (``policy.host_text.names_every_host``).
"""

from __future__ import annotations

from tests.helpers.routes_rejected import RoutesRejectedCase

BEFORE = "routes:\n- pypi.org\n"
SPELLINGS = {
    "a lone wildcard": 'routes:\n- pypi.org\n- "*"\n',
    "a full-width letter": 'routes:\n- pypi.org\n- "\\uff43rates.io"\n',
    "an ideographic full stop": 'routes:\n- pypi.org\n- "crates\\u3002io"\n',
    "a soft hyphen": 'routes:\n- pypi.org\n- "cra\\u00adtes.io"\n',
    "a surrogate pair": '{"routes": ["pypi.org", "\\ud835\\udc1crates.io"]}\n',
    "an IPv4-mapped IPv6 address": 'routes:\n- pypi.org\n- "::ffff:a9fe:a9fe"\n',
    "a NAT64 IPv6 address": 'routes:\n- pypi.org\n- "[64:ff9b::a9fe:a9fe]"\n',
    "a YAML binary scalar": 'routes:\n- pypi.org\n- !!binary Y3JhdGVzLmlv\n',
    "a YAML binary scalar, its tag escaped": 'routes:\n- pypi.org\n- !!%62inary "Y3JhdGVzLmlv"\n',
    "a YAML binary block scalar": 'routes:\n- pypi.org\n- host: !<tag:yaml.org,2002:binary> |\n'
                                  '    Y3JhdGVz\n    Lmlv\n',
    "a 6to4 IPv6 address": 'routes:\n- pypi.org\n- "2002:a9fe:a9fe::1"\n',
}


class RoutesRejectedSpellingsTest(RoutesRejectedCase):
    current = BEFORE

    def test_each_spelling_is_named_by_the_rule_that_rejects_it(self) -> None:
        crates = self.reject("--bottle", "web-1", "--host", "crates.io")
        metadata = self.reject("--bottle", "web-1", "--host", "169.254.169.254")
        proposals = {name: self.filed(text) for name, text in SPELLINGS.items()}
        listed = self.run_cli("proposals", "list").stdout
        for name, proposal in proposals.items():
            with self.subTest(name):
                rejected = [each["text"] for each in self.shown(proposal)["grants"]["warnings"]
                            if each["kind"] == "rejected"]
                self.assertEqual(len(rejected), 1 if name != "a lone wildcard" else 2, rejected)
                rule = metadata if "IPv6" in name else crates
                self.assertTrue(any(f"which standing rejection {rule} rejects for web-1" in text
                                    for text in rejected), rejected)
                row = next(line for line in listed.splitlines() if proposal.short_id in line)
                self.assertRegex(row, r"\[[a-z,-]*rejected[a-z,-]*\]")

    def test_no_false_alarm_for_other_hosts(self) -> None:
        self.reject("--bottle", "web-1", "--host", "crates.io")
        proposal = self.filed('# * is never listed here\nroutes:\n- pypi.org\n- "\\uff50ypi.org"\n- "*.pypi.org"\n'
                              '- "::ffff:a9fe:a9fe"\n- "64:ff9b::808:808"\n')
        self.assertNotIn("rejected", [each["kind"] for each in self.shown(proposal)["grants"]["warnings"]])
