"""Masking a token out of what the egress DLP files: today's linear Masker against the quadratic one it replaced."""

from __future__ import annotations

import string
import time

from common import machine, median, parser, table, work_dir

from bot_bottle.sidecar.egress import _token_allow_payload
from bot_bottle.text.redaction import REDACTED, Masker


def old_mask_fragments(text: str, value: str, shortest: int = 6) -> str:
    """The masking egress used before issue 18 (kept here only to measure against): it grows each run by
    slicing and searching the value again, which is quadratic in the value's length."""
    shortest = min(shortest, len(value))
    out: list[str] = []
    index = 0
    while index < len(text):
        longest = 0
        if index + shortest <= len(text) and text[index : index + shortest] in value:
            longest = shortest
            while index + longest < len(text) and text[index : index + longest + 1] in value:
                longest += 1
        if longest:
            if not out or out[-1] != REDACTED:
                out.append(REDACTED)
            index += longest
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def token(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(alphabet[(i * 7919 + i // 62) % 62] for i in range(length))


def timed(call: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return median(samples)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    runs = args.runs or (1 if args.smoke else 5)
    lengths = (1_000, 4_000) if args.smoke else (1_000, 4_000, 16_000, 32_000)
    print(machine(work_dir(args)))
    print(f"median milliseconds of {runs} run(s); the value sits in the URL path and the body around it\n")
    rows = []
    for length in lengths:
        value = token(length)
        context = f"POST /upload/{value}?q=1 HTTP/1.1\r\nHost: api.example\r\n\r\n{{\"t\": \"{value}\"}}"
        snippet = context[: len(value) + 120]

        def payload(value: str = value, context: str = context) -> None:
            _token_allow_payload(Masker([value]), host="api.example", method="POST", path=f"/upload/{value}",
                                 detector="github-pat", context=context, value=value,
                                 fingerprint="f" * 64)  # the fingerprint is the helper's, not the report's, cost

        rows.append([f"{length:,}", f"{timed(lambda v=value, s=snippet: old_mask_fragments(s, v), runs) * 1000:.0f}",
                     f"{timed(lambda v=value, s=snippet: Masker([v]).mask(s), runs) * 1000:.0f}",
                     f"{timed(payload, runs) * 1000:.0f}"])
    print(table(["value chars", "old masking ms", "Masker ms", "whole report ms"], rows))


if __name__ == "__main__":
    main()
