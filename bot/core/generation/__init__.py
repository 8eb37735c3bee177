"""Text generation: the asyncio-facing sampler, one batching worker thread per loaded
model, the verbatim guard and its index, and the cache of loaded models."""
