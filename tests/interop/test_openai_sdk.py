"""The OpenAI Python SDK (it ships with vLLM) against `llm-emu serve`: completions and chat, plain and streamed."""

from __future__ import annotations

from typing import Any

import pytest

from llm_emu.server import ServerProcess

pytestmark = pytest.mark.slow

IGNORE_EOS = {"ignore_eos": True}
"""vLLM's extension, sent the SDK's way (extra_body): exactly max_tokens tokens come back."""


@pytest.fixture(scope="module")
def client(emu_server: ServerProcess) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=emu_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.ci_e2e
def test_completions_and_chat(client: Any, emu_server: ServerProcess) -> None:
    model = emu_server.served_model
    assert [m.id for m in client.models.list()] == [model]
    comp = client.completions.create(model=model, prompt="Hello, my name is", max_tokens=9, extra_body=IGNORE_EOS)
    assert comp.usage.completion_tokens == 9 and comp.choices[0].text and comp.choices[0].finish_reason == "length"
    chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=7,
                                          extra_body=IGNORE_EOS)
    assert chat.usage.completion_tokens == 7 and chat.choices[0].message.role == "assistant"
    assert chat.usage.prompt_tokens > 1  # the chat template was applied by vLLM's own server


@pytest.mark.ci_e2e
def test_streaming_with_usage(client: Any, emu_server: ServerProcess) -> None:
    model = emu_server.served_model
    chat = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=12, stream=True,
        stream_options={"include_usage": True}, extra_body=IGNORE_EOS))
    assert chat[-1].usage is not None and chat[-1].usage.completion_tokens == 12 and not chat[-1].choices
    assert sum(1 for c in chat if c.choices and c.choices[0].delta.content) >= 6  # streamed, not one blob
    assert chat[-2].choices[0].finish_reason == "length"
    comp = list(client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, stream=True,
                                          stream_options={"include_usage": True}, extra_body=IGNORE_EOS))
    assert comp[-1].usage.completion_tokens == 10 and sum(1 for c in comp if c.choices and c.choices[0].text) >= 5


def test_unemulated_parameters_raise_the_sdks_bad_request(client: Any, emu_server: ServerProcess) -> None:
    from openai import BadRequestError

    with pytest.raises(BadRequestError, match="best_of=3"):
        client.completions.create(model=emu_server.served_model, prompt="x", max_tokens=4, best_of=3)
    with pytest.raises(BadRequestError, match="n > 1"):
        client.completions.create(model=emu_server.served_model, prompt="x", max_tokens=4, n=2)
