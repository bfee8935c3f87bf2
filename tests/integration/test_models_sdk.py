"""The official `openai` SDK — OpenAI and AzureOpenAI, sync and async, streaming and not — against the gateway,
unmodified; bodies pass through faithfully in both directions."""
from __future__ import annotations

import asyncio

import openai
import pytest

from tests.integration.models_support import UPSTREAM_KEYS, backend, setup_model
from tests.support.fake_openai import FakeOpenAI, ok


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI("a", api_key=UPSTREAM_KEYS["a"]) as f:
        yield f


@pytest.fixture(scope="module")
def azure_fake():
    with FakeOpenAI("az", api_key=UPSTREAM_KEYS["b"]) as f:
        yield f


@pytest.fixture(scope="module")
def model(gateway, fake, azure_fake):
    import httpx

    from tests.conftest import ADMIN_KEY

    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        return setup_model(admin, [backend(fake, "a", key="UPSTREAM_SECRET_TEST_A")])


@pytest.fixture
def clean(fake):
    fake.reset()
    return fake


def test_openai_sync(gateway, model, clean):
    _, name, secret = model
    clean.script(ok("Hi there friend", extra={"x_vendor_field": {"kept": True}}))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=name, messages=[{"role": "user", "content": "hello"}], temperature=0.2,
        extra_body={"custom_param": [1, 2]})
    resp = raw.parse()
    assert resp.choices[0].message.content == "Hi there friend"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.model_extra["x_vendor_field"] == {"kept": True}  # unknown response fields pass through
    assert raw.headers["x-gateway-backend"] == "a" and raw.headers["x-request-id"]
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    sent = clean.requests[-1]
    assert sent.body["custom_param"] == [1, 2] and sent.body["temperature"] == 0.2  # unknown request fields too
    assert sent.body["model"] == "a-deploy"  # the public name maps to the backend's model id
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEYS['a']}"  # never the client's key
    assert secret not in str(sent.headers)


def test_openai_sync_stream(gateway, model, clean):
    _, name, secret = model
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    chunks = list(client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "Hello from fake"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage: the gateway's chunk is stripped
    assert clean.requests[-1].body["stream_options"] == {"include_usage": True}  # …but it asked upstream
    with_usage = list(client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0


def test_openai_async_both_modes(gateway, model, clean):
    _, name, secret = model

    async def run():
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
        one = await client.chat.completions.create(model=name, messages=[{"role": "user", "content": "a"}])
        stream = await client.chat.completions.create(model=name, messages=[{"role": "user", "content": "b"}],
                                                      stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        emb = await client.embeddings.create(model=name, input=["x", "y"])
        await client.close()
        return one, "".join(parts), emb

    one, streamed, emb = asyncio.run(run())
    assert one.choices[0].message.content == "Hello from fake"
    assert streamed.strip() == "Hello from fake"
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8


def test_azure_openai_sync_and_async(gateway, fake, azure_fake):
    import httpx

    from tests.conftest import ADMIN_KEY

    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        _, name, secret = setup_model(admin, [backend(azure_fake, "az", kind="azure_openai",
                                                      key="UPSTREAM_SECRET_TEST_B")])
    azure_fake.reset()
    client = openai.AzureOpenAI(azure_endpoint=gateway.url, api_key=secret, api_version="2024-10-21",
                                max_retries=0)
    resp = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hello"}])
    assert resp.choices[0].message.content == "Hello from fake"
    sent = azure_fake.requests[-1]
    assert sent.path == "/openai/deployments/az-deploy/chat/completions"
    assert sent.query["api-version"] == "2024-10-21" and sent.headers["api-key"] == UPSTREAM_KEYS["b"]
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": "x"}], stream=True) if c.choices)
    assert streamed.strip() == "Hello from fake"

    async def run():
        aclient = openai.AsyncAzureOpenAI(azure_endpoint=gateway.url, api_key=secret, api_version="2024-10-21",
                                          max_retries=0)
        one = await aclient.chat.completions.create(model=name, messages=[{"role": "user", "content": "a"}])
        stream = await aclient.chat.completions.create(model=name, messages=[{"role": "user", "content": "b"}],
                                                       stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        emb = await aclient.embeddings.create(model=name, input="x")
        await aclient.close()
        return one, "".join(parts), emb

    one, streamed, emb = asyncio.run(run())
    assert one.choices[0].message.content == "Hello from fake" and streamed.strip() == "Hello from fake"
    assert len(emb.data) == 1


def test_sdk_sees_gateway_errors_as_openai_errors(gateway, model, clean):
    _, name, secret = model
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-gw-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
