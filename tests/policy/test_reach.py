"""Where a host reaches inside (policy.reach): every way of writing the address, and no false alarm."""

from __future__ import annotations

import unittest

from bot_bottle.policy.hosts import MAX_SHOWN_PROBLEMS, spelled_addresses
from bot_bottle.policy.reach import inside_places


class InsidePlacesTest(unittest.TestCase):
    def test_each_form_of_an_address_inside(self) -> None:
        """IPv6 bare, bracketed, with a zone or a port; IPv4-mapped; inet_aton's forms; a name for it."""
        for host, needle in (("::1", "this machine"), ("[::1]:8080", "this machine"), ("::", "this machine"),
                             ("fe80::1%eth0", "fe80::1, a link-local address"),
                             ("[fd00:ec2::254]", "EC2's metadata service"),
                             ("fd12:3456::1", "a private network's address"),
                             ("::ffff:169.254.169.254", "169.254.169.254, the cloud's metadata service"),
                             ("::ffff:a9fe:a9fe", "169.254.169.254, the cloud's metadata service"),
                             ("0x7f.1", "127.0.0.1, this machine"), ("2130706433", "127.0.0.1, this machine"),
                             ("127.1:22", "127.0.0.1, this machine"), ("169.254.169.254.", "the cloud's metadata"),
                             ("LOCALHOST", "127.0.0.1, this machine"), ("*.localhost", "this machine"),
                             ("ip6-localhost", "::1, this machine"), ("*.nip.io", "any address at all"),
                             ("*.google.internal", "169.254.169.254"),
                             ("*.docker.internal", "the host machine")):
            with self.subTest(host=host):
                places = inside_places(host)
                self.assertTrue(places and needle in places[0], places)

    def test_more_loopback_and_wildcard_dns_services(self) -> None:
        """Public services for local development answer every name under them with 127.0.0.1 (local.gd,
        localhost.direct, lacolhost.com), and local-ip.co with the address a name spells (hex too): before,
        app.local.gd was a plain host on every screen, and *.local-ip.co no wildcard over every address."""
        for host in ("app.local.gd", "admin.localhost.direct", "x.lacolhost.com", "LOCAL.GD."):
            with self.subTest(host=host):
                self.assertEqual(spelled_addresses(host), ["127.0.0.1"])
                self.assertIn("this machine", inside_places(host)[0])
        self.assertEqual(spelled_addresses("c0a80101.my.local-ip.co"), ["192.168.1.1"])
        self.assertIn("any address", inside_places("*.local-ip.co")[0])

    def test_the_host_itself_is_not_named_twice(self) -> None:
        self.assertEqual(inside_places("10.0.0.5"),
                         ["a private network's address (the operator's network, a cloud's, other containers)"])

    def test_the_worst_comes_first_whatever_decoys_pad_the_name(self) -> None:
        """A name spelling many addresses: the metadata service first, the list bounded and the rest counted."""
        name = ".".join(f"10.0.0.{n}" for n in range(1, 9)) + ".169.254.169.254.nip.io"
        places = inside_places(name)
        self.assertIn("the cloud's metadata service", places[0])
        self.assertEqual(len(places), MAX_SHOWN_PROBLEMS + 1)
        self.assertRegex(places[-1], r"^and \d+ more$")

    def test_the_ietf_protocol_assignments_alike_on_every_python(self) -> None:
        """192.0.0.0/24 reaches no public network (RFC 6890) but for two anycast services: 3.11's ipaddress calls
        192.0.0.192 global, 3.12.4 and 3.13 do not; the verdict here is the same on each."""
        for host in ("192.0.0.192", "192.0.0.1", "192.0.0.170", "[::ffff:192.0.0.192]"):
            with self.subTest(host=host):
                self.assertIn("reserved for special uses", " ".join(inside_places(host)))

    def test_a_top_level_domain_public_dns_lacks_in_each_form(self) -> None:
        """kubernetes.default however written (case, trailing dot, port, wildcard, full-width letters) and an
        unlisted internationalized TLD in either form reach inside; a listed one in any form, .example and .invalid
        do not."""
        for host in ("kubernetes.default", "KUBERNETES.DEFAULT.", "kubernetes.default:6443", "*.default",
                     "kubernetes.\uff44\uff45\uff46\uff41\uff55\uff4c\uff54", "api.xn--zckzah",
                     "api.\u30c6\u30b9\u30c8", "db.test", "vault.alt"):
            with self.subTest(host=host):
                self.assertIn("a top-level domain public DNS does not have", " ".join(inside_places(host)))
        for host in ("a.\u0440\u0444", "a.xn--p1ai", "a.\uff23\uff2f\uff2d", "shop.\u4e2d\u56fd", "docs.example",
                     "x.invalid", "*.example", "mirror.onion", "1.2.3.4.5", "x.\udcff"):
            with self.subTest(host=host):
                self.assertEqual(inside_places(host), [])

    def test_nothing_public_is_inside(self) -> None:
        for host in ("pypi.org", "8.8.8.8", "[2606:4700::1111]", "2606:4700::1111", "1.1.1.1.nip.io",
                     "172.32.0.1", "100.128.0.1", "224.0.0.1", "*.python.org", "a.io:443", "", "[", "::1::2",
                     "x" * 300, "1.2.3.4.5.6", "192.0.0.9", "192.0.0.10", "192.0.1.1"):
            with self.subTest(host=host):
                self.assertEqual(inside_places(host), [])
