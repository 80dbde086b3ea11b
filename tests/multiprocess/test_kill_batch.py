"""A writer SIGKILLed in the middle of its batches: readers never see part of a batch, and a
new writer takes the store over at once while the same readers keep following it."""

import random
import signal

import pysos
import mp_workers as w

OPTIONS = {"segment_size": 64 * 1024, "value_size": 600, "compact_every": 10}


def test_readers_never_see_a_partial_batch_across_writer_kills(tmp_path):
    """Readers iterating items() see each 50-key batch whole or not at all, across 3 SIGKILLed writers (one dies with half a batch written) and a 4th that finishes."""
    ctx = w.context()
    rng = random.Random(99)
    path = tmp_path / "store"
    pysos.Dict(path).close()
    published, stop, queue = ctx.Value("q", -1), ctx.Event(), ctx.Queue()
    readers = [ctx.Process(target=w.batch_reader, args=(path, published, stop, queue)) for _ in range(3)]
    for reader in readers:
        reader.start()
    killed = 0
    try:
        for cycle in range(4):
            ready = ctx.Event()
            last_cycle = cycle == 3
            options = dict(OPTIONS, batches=15 if last_cycle else 0, tear_at=5 if cycle == 1 else None)
            writer = ctx.Process(target=w.batch_writer, args=(path, published, ready, options, queue))
            writer.start()
            assert ready.wait(60), "the new writer could not open the store (see its error below)"
            if last_cycle:
                writer.join(120)
                assert writer.exitcode == 0
            elif options["tear_at"] is not None:  # it kills itself half-way through writing a batch
                writer.join(120)
                assert writer.exitcode == -signal.SIGKILL
                killed += 1
            else:
                before = published.value
                stop.wait(rng.uniform(0.4, 1.0))
                writer.kill()  # SIGKILL, most likely inside a batch
                writer.join(60)
                killed += 1
                assert published.value > before, "the writer made no progress before the kill"
    finally:
        stop.set()
        for reader in readers:
            reader.join(60)
            if reader.exitcode is None:
                reader.kill()
    errors, figures = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert killed == 3 and all(r.exitcode == 0 for r in readers)
    final = published.value
    seen = [f for who, f in figures.items() if who.startswith("batch_reader")]
    assert len(seen) == 3
    for f in seen:  # each reader followed every writer, up to the last batch of the last one
        assert f["last"] == final and f["scans"] > 0 and f["batches_seen"] > 1
    torn = sum(f["torn_tail_cut"] for who, f in figures.items() if who.startswith("opened"))
    assert torn >= 1, "the half-written batch was not cut off by the next writer"
    print(f"{final + 1} batches; torn tails cut by the next writer: {torn}; readers: {seen}")
    with pysos.Dict(path, readonly=True) as d:
        sizes = w.check_batches(d.items())
        assert max(sizes) == final == d["last"]
