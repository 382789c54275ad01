"""A Redis subscription's listener ends when its task is cancelled, whenever the cancel lands
(redis-py 8.1's `listen()` can swallow one that lands inside its read)."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import Redis

from hotline_core.loops import subscription


async def test_a_cancelled_listener_always_ends(redis: Redis) -> None:
    heard: list[str] = []

    async def listen() -> None:
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe("subtest")
            async for message in subscription(pubsub, poll_s=0.2):
                if message.get("type") == "message":
                    heard.append(str(message["data"]))

    rng = random.Random(5)
    for attempt in range(300):  # with listen(), one of these hung within the first few dozen
        task = asyncio.create_task(listen())
        await asyncio.sleep(rng.random() * 0.01)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        assert done, f"attempt {attempt}: the listener did not end after its cancel"
        assert task.cancelled()
    # And it does deliver messages in between.
    task = asyncio.create_task(listen())
    while not heard:
        await redis.publish("subtest", "hello")
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.wait([task], timeout=3)
    assert heard[0] == "hello"
