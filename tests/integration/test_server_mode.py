"""Server mode against a real slurmrestd, cycle after cycle, with jobs coming and going
(issue 9): every endpoint up at every scrape, no error counted, one token renewal.

slurmrestd 23.11 to 26.05.2 answered /nodes?update_time= with HTTP 500 once nodes had
changed (slurmctld's pings of node1 change its record every 10 s in the lab, as some
node's answer does nearly every cycle on a real cluster); the exporter took it for a
refused token. Run time: 80 s on 24.11 and 26.05, where update_time is in play (about
26 cycles, 8 node changes), 30 s on 22.05 (v0.0.38 has no update_time on /nodes);
SLURMLAB_SERVER_SECONDS overrides it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections import Counter

from tests.integration.lab import Lab
from tests.integration.serving import Samples, job_churn, server_exporter
from tests.integration.test_live import NEWEST, minted, served_endpoints

SECONDS = {"22.05": 30.0, "24.11": 80.0, "26.05": 80.0}


def _nodes_last_update(lab: Lab) -> int | None:
    """slurmrestd's last_update of /nodes (v0.0.40+), to show the nodes did change."""
    if lab.release == "22.05":
        return None
    req = urllib.request.Request(
        f"{lab.url}/slurm/{NEWEST[lab.release]}/nodes/",
        headers={"X-SLURM-USER-TOKEN": lab.token(600), "X-SLURM-USER-NAME": lab.user},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(json.load(resp)["last_update"]["number"])


def _up(samples: Samples) -> dict[str, float]:
    return {labels["endpoint"]: v for labels, v in samples["slurm_exporter_endpoint_up"]}


def test_server_mode_with_jobs_coming_and_going(lab: Lab) -> None:
    seconds = float(os.environ.get("SLURMLAB_SERVER_SECONDS", SECONDS.get(lab.release, 30)))
    nodes_before = _nodes_last_update(lab)
    down: Counter[str] = Counter()
    scrapes = 0
    with server_exporter(*minted(lab), interval=3) as server, job_churn(lab) as churned:
        started = time.time()
        last = started - 3600.0
        while time.time() - started < seconds:
            samples = server.cycle_started_after(last)  # each cycle's snapshot, once
            last = samples["slurm_exporter_collection_timestamp_seconds"][0][1]
            scrapes += 1
            down.update(e for e, v in _up(samples).items() if v != 1)
            assert set(_up(samples)) == set(served_endpoints(lab.release))
        final = server.scrape()
    errors = {
        (labels["endpoint"], labels["reason"]): v
        for labels, v in final.get("slurm_exporter_endpoint_errors_total", [])
        if v
    }
    renewals = {labels["result"]: v for labels, v in final["slurm_exporter_token_renewals_total"]}
    summary = f"{scrapes} cycles: down {dict(down)}, errors {errors}, renewals {renewals}"
    print(f"\n{lab.release} server mode, {seconds:.0f} s: {summary}")
    assert scrapes >= seconds / 3 - 3, summary
    assert len(churned) >= seconds / 4, f"jobs submitted: {len(churned)}"
    assert not down and not errors, summary
    assert renewals == {"success": 1.0, "failure": 0.0}, summary  # the first token only
    if nodes_before is not None:  # the nodes did change meanwhile: the test proves something
        assert (_nodes_last_update(lab) or 0) > nodes_before
