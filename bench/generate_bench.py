"""QA generation throughput: financial-datasets' own loop vs engine.generate, in one run.

Both talk to the same loopback OpenAI-compatible server (tests/openai_server.py) that answers every
request after a fixed latency (300 ms by default), with the same texts and questions per text.
The package's ``DatasetGenerator.generate_from_texts`` sends one chunk at a time and sleeps 1 s
after each; the engine sends ``--workers`` chunks at once. Prints items per minute and the ratio.

    .venv/bin/python bench/generate_bench.py [--texts 16] [--latency 0.3] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from openai_server import Behavior, running_stub  # noqa: E402

from engine import generate as gen  # noqa: E402

BENCH_KEY = "bench-not-a-secret"


def make_texts(count: int) -> list[str]:
    return [
        f"Segment {i} of the Zentrix annual report. Revenue of product line {i} was ${40 + i} million. "
        f"Its gross margin was {50 + i % 10}%. The line employs {100 + 7 * i} engineers in Lyon."
        for i in range(count)
    ]


def run_package(texts: list[str], questions: int, *, keep_sleep: bool = True) -> tuple[int, float]:
    # The package builds its OpenAI client at import from these variables (key first, then base URL).
    import financial_datasets.generator as generator_module

    generator = generator_module.DatasetGenerator(model="gpt-4o-mini", api_key=BENCH_KEY)
    real_time = generator_module.time
    if not keep_sleep:  # isolates what concurrency alone buys, without the package's 1 s pause
        # Swap the module's own `time` name only: patching time.sleep would also stop the server's latency.
        generator_module.time = types.SimpleNamespace(sleep=lambda seconds: None)
    try:
        start = time.perf_counter()
        dataset = generator.generate_from_texts(texts=texts, max_questions=questions * len(texts))
        return len(dataset.items), time.perf_counter() - start
    finally:
        generator_module.time = real_time


def run_engine(texts: list[str], questions: int, workers: int, base_url: str) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(prefix="ft-hallu-bench-") as out:
        config = gen.GenerateConfig(
            output_dir=out,
            endpoint=gen.EndpointConfig(model="gpt-4o-mini", base_url=base_url),
            questions_per_chunk=questions,
            workers=workers,
        )
        # One chunk per text, exactly as the package receives them.
        chunks = gen.make_chunks(
            texts, chunk_chars=config.chunk_chars, overlap_chars=config.chunk_overlap_chars
        )
        assert len(chunks) == len(texts)
        start = time.perf_counter()
        result = gen.generate(chunks, config)
        return result.items, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=16)
    parser.add_argument("--questions", type=int, default=5, help="questions per text")
    parser.add_argument("--latency", type=float, default=0.3, help="server seconds per request")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    texts = make_texts(args.texts)
    with running_stub(Behavior(latency_s=args.latency)) as stub:
        os.environ["OPENAI_API_KEY"] = BENCH_KEY
        os.environ["OPENAI_BASE_URL"] = stub.base_url
        package_items, package_s = run_package(texts, args.questions)
        nosleep_items, nosleep_s = run_package(texts, args.questions, keep_sleep=False)
        engine_items, engine_s = run_engine(texts, args.questions, args.workers, stub.base_url)
        requests = len(stub.requests)
    expected = args.texts * args.questions
    if expected != package_items or expected != engine_items or expected != nosleep_items:
        print(
            f"item counts differ from {expected}: package {package_items}/{nosleep_items}, engine {engine_items}"
        )
        return 1
    package_rate = package_items / package_s * 60
    engine_rate = engine_items / engine_s * 60
    print(f"texts {args.texts}, {args.questions} questions each, server latency {args.latency * 1000:.0f} ms")
    print(f"requests served: {requests}")
    print(
        f"financial-datasets generate_from_texts: {package_items} items in {package_s:6.2f} s = {package_rate:8.1f} items/min"
    )
    print(
        f"engine.generate ({args.workers} workers):      {engine_items} items in {engine_s:6.2f} s = {engine_rate:8.1f} items/min"
    )
    print(f"ratio: {engine_rate / package_rate:.1f}x")
    nosleep_rate = nosleep_items / nosleep_s * 60
    print(
        f"(package loop with its 1 s sleep removed: {nosleep_rate:.1f} items/min; "
        f"engine is {engine_rate / nosleep_rate:.1f}x that)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
