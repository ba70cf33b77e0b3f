"""Graves synthesis network speed, side by side with pywritesmooth, in one run.

    python benchmarks/bench_graves.py [--repeats 3] [--threads N] [--json results.json] [--quick] [--no-peer]

The same as ``handwriting bench graves``; see :mod:`handwriting.bench` for what is measured and how to
install the peer (``pip install --no-deps --target /tmp/bench-peer pywritesmooth==0.9.2``).  Compare ratios
within one run: on a shared machine absolute times drift.
"""

import sys

from handwriting.bench import main

if __name__ == "__main__":
    sys.exit(main(["graves", *sys.argv[1:]]))
