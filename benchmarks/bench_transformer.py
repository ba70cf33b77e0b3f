"""Cursive transformer speed, side by side with a re-implementation of the reference's computation pattern.

    python benchmarks/bench_transformer.py [--repeats 5] [--json results.json] [--quick] [--threads N]

The same as ``handwriting bench transformer``; see :mod:`handwriting.bench_transformer` for what is
measured and how.  Compare ratios within one run: on a shared machine absolute times drift.
"""

import argparse
import sys

from handwriting.bench_transformer import configure, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
