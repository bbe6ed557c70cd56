"""How fast the message contracts decode and encode: the per-message cost on the hot path.

Run: python bench/components/contracts_bench.py [--out bench/results/contracts.json]
Compares fleetserve's codec (orjson + compiled fastjsonschema) with the stdlib json
parser feeding the same validator, with the `jsonschema` library when installed, and with
the worker's msgspec fast path (contracts/fastquery.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec

from fleetserve.contracts.codec import decode, duplicate_key, encode
from fleetserve.contracts.fastquery import QueryV1, decode_query
from fleetserve.contracts.schemas import MessageKind, load_schema, validator

EXAMPLES = files("fleetserve.schemas").joinpath("examples")


def example(kind: str, name: str) -> bytes:
    return EXAMPLES.joinpath(kind, name).read_bytes()


def per_second(fn: Callable[[], Any], seconds: float = 1.0) -> float:
    count, started = 0, time.process_time()  # CPU time: robust to a shared machine
    while (elapsed := time.process_time() - started) < seconds:
        for _ in range(1000):
            fn()
        count += 1000
    return count / elapsed


def measure() -> dict[str, Any]:
    query_raw = example("query", "valid-full-ttl-trace.json")
    reply = decode(MessageKind.REPLY, example("reply", "valid-answer-with-trace.json"))
    query_validator = validator(MessageKind.QUERY)
    parsed = json.loads(query_raw)
    float_raw = json.dumps({**parsed, "top_k": 3.0}).encode()
    results: dict[str, Any] = {
        "decode_query_orjson_fastjsonschema_per_s": per_second(
            lambda: decode(MessageKind.QUERY, query_raw)
        ),
        "decode_query_stdlib_json_fastjsonschema_per_s": per_second(
            lambda: query_validator(json.loads(query_raw))
        ),
        "encode_reply_per_s": per_second(lambda: encode(MessageKind.REPLY, reply)),
        # The repeated-key check decode() runs on every message (its share of the decode).
        "duplicate_key_check_per_s": per_second(lambda: duplicate_key(query_raw, parsed)),
        # What the worker runs: msgspec proves the query valid (and orjson gives the dict),
        # fastjsonschema judges only what msgspec does not accept.
        "decode_query_msgspec_fast_path_per_s": per_second(lambda: decode_query(query_raw)),
        "decode_query_msgspec_struct_only_per_s": per_second(
            lambda: msgspec.json.decode(query_raw, type=QueryV1)
        ),
        # A query msgspec refuses (an integral float) pays both: the fast path's cost on
        # the rare query it cannot prove.
        "decode_query_fast_path_fallback_per_s": per_second(lambda: decode_query(float_raw)),
    }
    try:
        import jsonschema  # noqa: PLC0415 - optional comparison only
    except ImportError:
        results["decode_query_jsonschema_lib_per_s"] = None
    else:
        checker = jsonschema.Draft7Validator(dict(load_schema(MessageKind.QUERY)))
        results["decode_query_jsonschema_lib_per_s"] = per_second(
            lambda: checker.validate(json.loads(query_raw)), seconds=0.5
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/contracts.json"))
    args = parser.parse_args()
    results = {
        "machine": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        **measure(),
    }
    fast = results["decode_query_orjson_fastjsonschema_per_s"]
    slow = results["decode_query_jsonschema_lib_per_s"]
    results["ratio_fastjsonschema_over_jsonschema_lib"] = fast / slow if slow else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        shown = f"{value:,.0f}" if isinstance(value, float) and value > 100 else value
        print(f"{key:50} {shown}")


if __name__ == "__main__":
    main()
