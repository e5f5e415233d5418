"""Benchmark tools (timing in interleaved turns, the matmul yardstick), used by ``yoloxdet bench`` and the
scripts in benchmarks/ only: no library package imports them."""
