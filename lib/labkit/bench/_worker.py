"""Entry point of a benchmark worker process (``python -m labkit.bench._worker``); see :mod:`labkit.bench.workers`."""

from labkit.bench.workers import serve_stdio

if __name__ == "__main__":
    serve_stdio()
