"""Speed benchmarks of the ``handwriting`` package, side by side with the peers (see README.md here).

Not part of the installed package: ``handwriting bench`` finds this folder next to the package in a clone
(an editable install) and imports :mod:`benchmarks.harness` from it.  Each ``bench_*.py`` also runs as a
script from the repository root.
"""
