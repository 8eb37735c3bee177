"""What a sampling request gives back: the finished `GenerationResult`, and the
`GenerationStream` that yields a request's text in chunks as it is sampled."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from bot.core.generation.batch_worker import Job
from models.sample import SampleRequest

ModelId = int | str


@dataclass(frozen=True)
class GenerationResult:
    text: str  # the continuation only (the prompt is not repeated)
    prompt: str
    model_id: ModelId
    server_id: int
    request: SampleRequest
    seed: int | None  # the seed the text was drawn with: same seed, same model -> same text
    seconds: float  # from the call to the last character
    blocked_copies: int = 0  # characters the verbatim guard had to resample


def generation_result(
    server_id: int, model_id: ModelId, job: Job, text: str, started: float
) -> GenerationResult:
    return GenerationResult(
        text=text,
        prompt=job.request.prompt,
        model_id=model_id,
        server_id=server_id,
        request=job.request,
        seed=job.seed,
        seconds=time.perf_counter() - started,
        blocked_copies=job.blocked,
    )


class GenerationStream:
    """`async for chunk in sampler.stream(...)`; after the loop, `.result` has the whole text.

    `job` is the sampler's not yet entered job context: entering it submits the request, so
    nothing runs until the first chunk is awaited."""

    def __init__(
        self, job: contextlib.AbstractAsyncContextManager[tuple[ModelId, Job]], server_id: int
    ) -> None:
        self._job = job
        self._server_id = server_id
        self.result: GenerationResult | None = None
        self._chunks = self._run()

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> str:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        """Stop early (the message was deleted): the row leaves the batch at the next step."""
        await self._chunks.aclose()

    async def _run(self) -> AsyncGenerator[str, None]:
        started = time.perf_counter()
        async with self._job as (model_id, job):
            sent = 0
            while (chunk := await job.next_chunk()) is not None:
                sent += len(chunk)
                yield chunk
            text = await job.result()
            if len(text) > sent:  # a row cut by the guard keeps what it held back for stop strings
                yield text[sent:]
            self.result = generation_result(self._server_id, model_id, job, text, started)
