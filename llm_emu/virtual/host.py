"""The host term of virtual time: CPU work of vLLM's own processes that does not overlap the device.

In wall-clock mode the emulated device sleeps while vLLM's real processes work on real cores; virtual time has
no host, so it charges a model of that work instead (deterministic, independent of machine load):

* ``step_*``: the EngineCore thread's CPU time per engine step before the step can be launched (scheduling,
  building the batch, processing the previous output). Charged on the virtual clock before the step is booked
  on the device timeline, so with async scheduling it only shows when the host is slower than the device
  (the device is still busy with the previous step), and with sync scheduling it adds to every step.
* ``request_in_*``: from the client sending a request to the request entering the scheduler (HTTP, prompt
  tokenisation in the API server, IPC to the EngineCore).
* ``api_request_s`` and ``api_output_s``: the API server is one event loop that takes every incoming request
  (HTTP, tokenisation) and every output chunk (detokenisation, SSE) one at a time. These are its busy time per
  request and per chunk; a request or chunk that finds it busy waits (first come, first served). A burst of
  arrivals therefore reaches the scheduler spread out, and a new request's first token waits behind the tokens
  of every request already running, as on a real server under load.
* ``api_step_s`` and ``api_token_s``: the API server's busy time per engine step that has outputs, before that
  step's chunks: taking the step's output batch off the EngineCore socket (``api_step_s``), then for each
  request in it detokenising its new token and handing a RequestOutput to the request's collector
  (``api_token_s``). That work is done for every request output, also when the collector merges it into a
  chunk not yet sent; ``api_output_s`` is then only the streaming of each chunk that is sent (SSE). Splitting
  the API server's CPU time this way matters under load: a step streams many chunks at once, and a loaded API
  server sends fewer, larger chunks, so a cost charged per chunk only is wrong both ways.
* ``api_request_turns``: how many times a request's intake goes back to the API server's queue. vLLM's serving
  path awaits many times between reading the request and handing it to the EngineCore (body, tokeniser,
  input processing, the IPC send); each await lets every ready task run first, so under streaming load a new
  request waits behind one step's outputs per await, not once. The intake's ``api_request_s`` is split evenly
  over the turns, each queued behind what the API server has at that moment. 1 is one first-come first-served
  job.
* ``output_s``: from the API server finishing a chunk to the client receiving it (SSE, client parsing).
  Shifts TTFT and E2E latency; inter-token gaps change only as much as the API server's queue does.

The defaults are zero (pure device time). Measured values for a machine come from ``bench/host_model.py``, which
fits them from wall-clock runs of the emulator with step and request traces.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from llm_emu.errors import EmuError
from llm_emu.profile.features import StepFeatures


@dataclass(frozen=True)
class HostModel:
    """Host time charged by the virtual clock, in seconds."""

    step_base_s: float = 0.0
    """EngineCore CPU per step, fixed part."""
    step_per_req_s: float = 0.0
    """EngineCore CPU per scheduled request in the step."""
    step_per_token_s: float = 0.0
    """EngineCore CPU per prefill token in the step."""
    request_in_s: float = 0.0
    """Client send to scheduler, fixed part."""
    request_in_per_token_s: float = 0.0
    """Client send to scheduler, per prompt token (tokenisation)."""
    api_request_s: float = 0.0
    """API-server busy time per incoming request (requests and chunks are served one at a time)."""
    api_output_s: float = 0.0
    """API-server busy time per output chunk."""
    api_request_turns: int = 1
    """Times a request's intake queues at the API server (its api_request_s split evenly between them)."""
    api_step_s: float = 0.0
    """API-server busy time per engine step with outputs, before its chunks."""
    api_token_s: float = 0.0
    """API-server busy time per request output of an engine step (detokenise, hand to the collector), with the
    step's batch, merged or not."""
    output_s: float = 0.0
    """API server done with a chunk -> the client has it."""
    source: str = "none"
    """Where the numbers come from (machine, date, command), shown in results."""

    def step_cost(self, features: StepFeatures) -> float:
        """Host seconds charged before a step with these features is launched."""
        return (self.step_base_s + self.step_per_req_s * features.num_reqs
                + self.step_per_token_s * features.num_prefill_tokens)

    def api_batch(self, outputs: int) -> float:
        """API-server seconds to take one engine step's batch of ``outputs`` request outputs (before its chunks)."""
        return self.api_step_s + self.api_token_s * outputs if outputs else 0.0

    def api_step_work(self, outputs: int) -> float:
        """API-server seconds for one engine step's batch and every one of its ``outputs`` chunks (none merged):
        when a new request's first chunk, the step's last, is done after the step's release."""
        return self.api_batch(outputs) + self.api_output_s * outputs

    def request_in(self, prompt_len: int) -> float:
        """Seconds from the API server taking a request of ``prompt_len`` tokens to the scheduler seeing it."""
        return self.request_in_s + self.request_in_per_token_s * prompt_len

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "host model") -> HostModel:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EmuError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
        model = cls(**data)
        bad = [f.name for f in fields(cls) if f.name not in ("source", *COUNTS) and not getattr(model, f.name) >= 0]
        if bad:
            raise EmuError(f"{where}: {bad} must be >= 0 seconds")
        if not (isinstance(model.api_request_turns, int) and model.api_request_turns >= 1):
            raise EmuError(f"{where}: api_request_turns must be a whole number >= 1, not {model.api_request_turns!r}")
        return model

    @classmethod
    def load(cls, path: str | Path) -> HostModel:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EmuError(f"host model {path}: cannot read it ({exc}); pass a JSON file made by "
                           "bench/host_model.py or 'none'") from None
        return cls.from_dict(data, str(path))


COUNTS = ("api_request_turns",)
"""Fields that are counts, not seconds (not scaled with the device's speed)."""

#: Pure device time: every host term zero.
NO_HOST = HostModel()

#: The host model measured on the reference machine (bench/host_model.py), shipped with the package.
DEFAULT_FILE = Path(__file__).with_name("host_default.json")


def default_host() -> HostModel:
    """The shipped host model (zero host time when none is shipped)."""
    return HostModel.load(DEFAULT_FILE) if DEFAULT_FILE.is_file() else NO_HOST


def resolve_host(ref: str | None) -> HostModel:
    """``None``/"default": the shipped model; "none": zero host time; else a JSON file."""
    if ref in (None, "default"):
        return default_host()
    if ref == "none":
        return NO_HOST
    return HostModel.load(ref)
