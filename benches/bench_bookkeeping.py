"""Per-step bookkeeping of a BroRL step, brorl vs plain NumPy, same inputs, one run.

    .venv/bin/python benches/bench_bookkeeping.py [--json] [--prompts 128 --n 512 ...]

The implementation lives in the package (brorl.bench.bookkeeping) so `brorl bench` gives the
same numbers to users who installed the wheel.
"""

import argparse
import sys

from brorl.bench import bookkeeping

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bookkeeping.add_arguments(parser)
    sys.exit(bookkeeping.run(parser.parse_args()))
