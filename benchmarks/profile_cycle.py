"""One collection cycle in the calling thread, for profilers (cProfile sees one thread).

    python3 -c 'import cProfile, sys; from benchmarks.profile_cycle import run;
                cProfile.run("run(sys.argv[1:])", sort="tottime")' --slurmrestd-url ...

The endpoints are called one after the other instead of concurrently; imports made
by the cycle are included, as in `--once`.
"""

from __future__ import annotations

from typing import Any


def run(argv: list[str]) -> Any:
    from exporter.auth import token_source_from_settings
    from exporter.client import SlurmrestdClient
    from exporter.cycle import Collection
    from exporter.settings import load_settings

    settings = load_settings(argv)
    tokens = token_source_from_settings(settings)
    collection = Collection(settings, SlurmrestdClient(settings, tokens), tokens)
    try:
        adapter = collection._current_adapter()
        for endpoint in settings.enabled_endpoints():
            collection._call(adapter, endpoint)
        return collection._publish(0.0)
    finally:
        collection.close()
