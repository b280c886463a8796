"""Text written for the person streams to a consumer as the real SmolLM2 writes it: in process (``local``), over
HTTP (``openai`` with ``stream=True`` against the model's own loopback server), whole once from the cache, never
for calls outside ``text_for_the_person``, and voided by a reset when an attempt fails and is retried."""

from __future__ import annotations

import threading

import pytest

from convrec.llm import ChatRequest, LLMClient, ResponseCache, RetryPolicy
from convrec.llm.errors import TransientLLMError
from convrec.llm.openai_backend import OpenAICompatibleLLM
from convrec.llm.stream import active_sink, stream_text_to, text_for_the_person

pytestmark = pytest.mark.slow

REQUEST = ChatRequest.from_prompt("Describe a good science-fiction movie in one sentence.", max_tokens=24)


class Recorder:
    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.resets = 0

    def text(self, piece: str) -> None:
        self.pieces.append(piece)

    def reset(self) -> None:
        self.resets += 1
        self.pieces.clear()


def test_the_local_backend_streams_each_piece_as_it_is_written(smollm2):
    recorder = Recorder()
    with stream_text_to(recorder.text, recorder.reset), text_for_the_person():
        response = smollm2.complete(REQUEST)
    assert len(recorder.pieces) >= 5  # token by token, not one lump
    assert "".join(recorder.pieces) == response.text and recorder.resets == 0


def test_only_calls_for_the_person_stream(smollm2):
    recorder = Recorder()
    with stream_text_to(recorder.text):
        smollm2.complete(REQUEST)  # a re-ranker's call: not for the person
        assert active_sink() is None
    with text_for_the_person():  # for the person, but nobody asked for a stream
        assert active_sink() is None
        smollm2.complete(REQUEST)
    assert recorder.pieces == []


def test_concurrent_streams_each_get_their_own_words(smollm2):
    """Two turns at once, in two threads (as the server runs them): each consumer gets its own reply's words
    only (a sink held anywhere but in the context would mix them); an inner consumer takes over and the outer
    one comes back after it."""
    prompts = ("Name a movie about space.", "Name a movie about the sea.")
    recorders = [Recorder(), Recorder()]
    responses: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def turn(n: int) -> None:
        with stream_text_to(recorders[n].text), text_for_the_person():
            barrier.wait()  # both streams are open before either model call starts
            responses[n] = smollm2.complete(ChatRequest.from_prompt(prompts[n], max_tokens=16))

    threads = [threading.Thread(target=turn, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert responses[0].text != responses[1].text
    for recorder, response in zip(recorders, responses, strict=True):
        assert "".join(recorder.pieces) == response.text
    outer, inner = Recorder(), Recorder()
    with stream_text_to(outer.text), text_for_the_person():
        with stream_text_to(inner.text):
            smollm2.complete(REQUEST)
        assert active_sink() is not None and not outer.pieces and inner.pieces


def test_the_openai_backend_streams_over_http(smollm2):
    backend = OpenAICompatibleLLM("smollm2-135m", smollm2.http_base_url, smollm2.http_api_key, timeout_s=60)
    try:
        recorder = Recorder()
        with stream_text_to(recorder.text), text_for_the_person():
            streamed = backend.complete(REQUEST)
        assert len(recorder.pieces) >= 5 and "".join(recorder.pieces) == streamed.text
        assert streamed.text == backend.complete(REQUEST).text  # the same words as the whole reply
        assert streamed.finish_reason == "length" and streamed.completion_tokens == 24
        assert streamed.prompt_tokens > 5
    finally:
        backend.close()


def test_a_cached_reply_arrives_whole_once(smollm2, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = LLMClient(smollm2, cache)
    try:
        first, again = Recorder(), Recorder()
        with stream_text_to(first.text), text_for_the_person():
            generated = client.complete(REQUEST)
        with stream_text_to(again.text), text_for_the_person():
            hit = client.complete(REQUEST)
        assert hit.cached and len(first.pieces) >= 5
        assert again.pieces == [generated.text]
    finally:
        cache.close()  # not client.close(): that would close the shared model too


class FailsOnceAfterWriting:
    """A fault injector around the real model: its first attempt writes (streams) the reply, then fails as a
    dropped connection would; later attempts are the model's own."""

    def __init__(self, model):
        self.model = model
        self.backend, self.identity = model.backend, model.identity
        self.failed = False

    def complete(self, request: ChatRequest):
        response = self.model.complete(request)
        if not self.failed:
            self.failed = True
            raise TransientLLMError("injected: the connection dropped after the reply was written")
        return response

    def close(self) -> None:
        pass


def test_a_retried_attempt_voids_what_the_failed_one_streamed(smollm2):
    client = LLMClient(FailsOnceAfterWriting(smollm2), retry=RetryPolicy(max_retries=2, base_s=0.01))
    recorder = Recorder()
    with stream_text_to(recorder.text, recorder.reset), text_for_the_person():
        response = client.complete(REQUEST)
    assert recorder.resets == 1 and client.usage.retries == 1
    assert "".join(recorder.pieces) == response.text  # the retry's pieces only, not the void ones before
