"""The agent makes the sidecar's route check slow with many overrides, where a grant covers every method.

``allows_route`` holds a grant to every method a request names
(``sidecar.method_override``), and read the path against each grant once per
method: a grant of every method under ``/repos/acme/web`` and a POST naming
8,000 methods in one ``X-HTTP-Method-Override`` (47 KB) on a 32 KB path took
the proxy 19 s of CPU for one request, and grows as the product of the two.
No client names more than a few methods: past ``MAX_METHODS_READ`` the
request is refused (fail closed), before any grant is read against it.
"""

from __future__ import annotations

import time

from bot_bottle.sidecar.method_override import MAX_METHODS_READ, methods_read_as
from tests.helpers.host_grants import HostGrantsCase

HOST = "api.example.com"
OVERRIDE = "X-HTTP-Method-Override"


class OverrideCostTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.approve("web-1", {"host": HOST, "paths": ["/repos/acme/web"]})  # every method

    def test_many_methods_on_a_long_path_are_answered_at_once_and_refused(self) -> None:
        path = "/repos/acme/web/" + "a/" * 16000
        methods = ",".join(f"m{i}" for i in range(8000))
        started = time.monotonic()
        self.assertFalse(self.lets_through("web-1", HOST, "POST", path, [(OVERRIDE, methods)]))
        self.assertLess(time.monotonic() - started, 2.0)

    def test_a_few_are_read_and_let_through_where_the_grant_covers_them(self) -> None:
        path = "/repos/acme/web/issues/1"
        few = ",".join(f"m{i}" for i in range(MAX_METHODS_READ // 2 - 1))  # each as written and upper-cased
        self.assertEqual(len(methods_read_as("POST", path, [(OVERRIDE, few)]) or []), MAX_METHODS_READ - 1)
        self.assertTrue(self.lets_through("web-1", HOST, "POST", path, [(OVERRIDE, few)]))
        self.assertIsNone(methods_read_as("POST", path, [(OVERRIDE, few + ",one,more")]))
