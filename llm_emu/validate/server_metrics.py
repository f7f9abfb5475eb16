"""Request-level timing as vLLM's own server measured it, from its Prometheus ``/metrics`` histograms.

Both sides of a validation run vLLM's unpatched API server and scheduler, so both export the same request
histograms. Scraping ``/metrics`` before and after a cell and dividing the change of ``_sum`` by the change
of ``_count`` gives per-cell means that split the client's TTFT into its parts:

* ``server_queue_ms``: EngineCore queued -> first scheduled (waiting for a step slot);
* ``server_prefill_ms``: first scheduled -> first token out of the engine step (the prefill step(s), device
  latency included);
* ``server_ttft_ms``: API server arrival -> first token processed by the API server; minus queue and prefill
  this is the host path (tokenisation, IPC in/out, input handling, output processing, and the rest of the
  engine step in flight when the request arrived: the scheduler queues new requests between steps);
* the client's TTFT minus ``server_ttft_ms``: HTTP, streaming and the client's own work.
"""

from __future__ import annotations

import urllib.error
import urllib.request

#: Result-key suffix -> vLLM histogram name (seconds).
HISTOGRAMS: dict[str, str] = {
    "ttft": "vllm:time_to_first_token_seconds",
    "queue": "vllm:request_queue_time_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
    "e2el": "vllm:e2e_request_latency_seconds",
    "itl": "vllm:inter_token_latency_seconds",
}

Snapshot = dict[str, tuple[float, float]]
"""Histogram name -> (sum, count), summed over label sets."""


def parse(text: str) -> Snapshot:
    """``_sum`` and ``_count`` of the HISTOGRAMS from Prometheus text exposition format."""
    wanted = set(HISTOGRAMS.values())
    acc: dict[str, list[float]] = {name: [0.0, 0.0] for name in wanted}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        for suffix, slot in (("_sum", 0), ("_count", 1)):
            base = name.removesuffix(suffix)
            if base != name and base in wanted:
                acc[base][slot] += float(value)
    return {k: (v[0], v[1]) for k, v in acc.items()}


def scrape(base_url: str, timeout: float = 10.0) -> Snapshot | None:
    """GET ``/metrics``; None when the server exports none (e.g. ``--disable-log-stats``)."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=timeout) as resp:
            return parse(resp.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def cell_means(before: Snapshot | None, after: Snapshot | None) -> dict[str, float]:
    """``server_<key>_ms`` means over the requests finished between two snapshots (empty if unknown)."""
    if before is None or after is None:
        return {}
    out: dict[str, float] = {}
    for key, name in HISTOGRAMS.items():
        (s0, c0), (s1, c1) = before.get(name, (0.0, 0.0)), after.get(name, (0.0, 0.0))
        if c1 > c0:
            out[f"server_{key}_ms"] = 1e3 * (s1 - s0) / (c1 - c0)
    return out
